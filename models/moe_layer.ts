/**
 * The MoE layer, for any model's program: every variant of the ScMoE paper
 * (Cai et al., "Shortcut-connected Expert Parallelism for Accelerating
 * Mixture-of-Experts", arXiv:2404.05019) as steps you put into your own
 * program. You name the values it reads, the current representation `A`
 * (the residual stream, read by the shared expert) and the tap `T` (the
 * preceding block's representation, read by the gate and the routed
 * experts of ScMoE and DGMoE), and the value it makes, `H`. The layer
 * brings the gate, the dispatch and combine all-to-alls, the experts on
 * their owner ranks, the combiner and the load-balancing loss.
 *
 * With `x = LN(A)` and `t = LN_tap(T)` (pre-norm, as in practice), `G` the
 * noisy top-k gate and `E_i` the experts:
 *
 * ```text
 * top1, top2   H = A + sum_i G(x)_i E_i(x)
 * se           H = A + SE(x) + sum_i G(x)_i E_i(x)                   G top-1
 * scmoe        H = A + c * SE(x) + sum_i G(t)_i E_i(t)               G top-1
 *                  CG-1: c = sigmoid(x w_cg); add: c = 1
 *              H = A + c * SE(x) + c' * sum_i G(t)_i E_i(t)          CG-2: [c, c'] = softmax(x W_cg)
 * dgmoe        H = A + sum_i G(t)_i E_i(t) + sum_i G'(x)_i E_i(x)    one gate, one expert set;
 *                  G' takes its second-ranked expert where its first is G's choice
 * ```
 *
 * ScMoE's position is the tap you pass: Pos-1 `T = M_l` (the preceding
 * block's output), Pos-2 `T = A_l` (after its attention), Pos-3
 * `T = H_{l-1}` (its input). The scheduler runs the gate and the dispatch
 * as soon as `T` exists and overlaps the all-to-alls with whatever compute
 * of yours runs between `T` and `H`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Tensor } from "./tf.ts";
import { expertRange } from "./checkpoint.ts";
import type { Combiner, Variant } from "./config.ts";
import { auxLoss, combineRows, decideRoute, gateLogits, gateWeights } from "./gate.ts";
import {
  addCosts,
  copy,
  elementwise,
  ffnCost,
  layerNormCost,
  linearCost,
  NO_COST,
  type StepCost,
  type StepShape,
} from "./cost.ts";
import { ffn, layerNorm, type ParamLookup } from "./layers.ts";
import { normal, ParamList, type ParamSpec, ZEROS } from "./params.ts";
import {
  type ComputeStep,
  computeStep,
  layoutKey,
  type MoePart,
  type RouteStep,
  type Step,
} from "./steps.ts";

/** The MoE variants of the paper. */
export type MoeVariant = Exclude<Variant, "dense">;

/** Options of {@linkcode moeLayer}. */
export interface MoeLayerOptions {
  /** Prefix of the layer's step and parameter names, e.g. `blocks.1.moe`. */
  name: string;
  /** The variant. */
  variant: MoeVariant;
  /** ScMoE's combiner of the shared and routed terms (default `"cg1"`). */
  combiner?: Combiner;
  /** The current representation `A` [B, T, C]: the residual, the shared expert's input. */
  input: string;
  /**
   * The preceding block's representation `T` [B, T, C] that the gate and the
   * routed experts read (ScMoE; DGMoE's preceding half). Required for
   * `scmoe` and `dgmoe`, not read by the others.
   */
  tap?: string;
  /** The value the layer makes, `H` [B, T, C]. */
  output: string;
  /** Model width C. */
  dim: number;
  /** Hidden width of the shared expert, and of each routed expert unless `expertHidden` is given. */
  hidden: number;
  /** Hidden width of each routed expert (default `hidden`; smaller for fine-grained experts). */
  expertHidden?: number;
  /** Experts E; with N ranks, rank r holds `expertRange(r, N, E)`, so N must divide E. */
  experts: number;
  /** Capacity factor in training (2.0). */
  capacityFactor?: number;
  /** Capacity factor in evaluation (2.0). */
  evalCapacityFactor?: number;
  /** Gate noise `eps * softplus(x Wn)` in training (true). */
  gateNoise?: boolean;
  /** Parameter prefix of the input's layer norm, `LN` (default `${name}.ln`). */
  norm?: string;
  /** Standard deviation of the initial weights (0.02). */
  std?: number;
  /** Standard deviation of the projections into the residual stream, the MLPs' `w2` (`std`). */
  residStd?: number;
  /** The layer's block index in overlap reports (default: its order among the program's layers). */
  block?: number;
  /**
   * Prefix of the gate's and the routed experts' parameters (default
   * `name`). Layers given the same `module` share one gate and one expert
   * set (DGMoE-Share: fewer parameters); list their parameters once (each
   * layer's `params` names the module's). Their gate uses keep their own
   * routes, noise and balancing losses, named by `name`.
   */
  module?: string;
}

/** The steps and parameters of one MoE layer. */
export interface MoeLayer {
  /**
   * Its steps, to put into your program after both its input and its tap
   * exist (the scheduler moves the gate and dispatch up to the tap).
   */
  steps: Step[];
  /** Its parameters: the input's norm, the gate, the tap's norm, the shared expert, the combiner, the experts. */
  params: ParamSpec[];
  /** Its load-balancing loss values, one per gate application, for {@linkcode lossStep}. */
  aux: string[];
}

/** One application of the layer's gate and experts. */
interface GateUse {
  /** Its name, e.g. `blocks.1.moe.gate` (DGMoE: `….gate.preceding`, `….gate.current`). */
  name: string;
  /** The value it routes: the tap or the input. */
  reads: string;
  /** Parameter prefix of the layer norm applied to it. */
  norm: string;
  /** Choices per token. */
  k: number;
  /** DGMoE's current half: the gate use whose first choices it avoids. */
  avoid?: string;
}

/**
 * One MoE layer of any variant, as steps and parameters.
 *
 * @example
 * ```ts
 * import { moeLayer } from "./moe_layer.ts";
 * // ScMoE Pos-2 in block 1: gate and experts read A_0, the shared expert A_1.
 * const layer = moeLayer({
 *   name: "blocks.1.moe", variant: "scmoe", input: "a1", tap: "a0", output: "h1",
 *   dim: 64, hidden: 256, experts: 4,
 * });
 * layer.aux; // ["blocks.1.moe.gate:aux"]
 * ```
 */
export function moeLayer(opts: MoeLayerOptions): MoeLayer {
  const { name, variant, input, dim: C, experts: E } = opts;
  const combiner: Combiner = variant === "scmoe" ? opts.combiner ?? "cg1" : "add";
  const norm = opts.norm ?? `${name}.ln`;
  const tapNorm = `${name}.ln_tap`;
  const preceding = variant === "scmoe" || variant === "dgmoe";
  if (preceding && !opts.tap) throw new RangeError(`MoE layer ${name}: ${variant} needs a tap`);
  if (E < 2) throw new RangeError(`MoE layer ${name}: needs at least 2 experts`);
  const gate = `${name}.gate`;
  const module = opts.module ?? name;
  const uses: GateUse[] = variant === "scmoe"
    ? [{ name: gate, reads: opts.tap!, norm: tapNorm, k: 1 }]
    : variant === "dgmoe"
    ? [
      { name: `${gate}.preceding`, reads: opts.tap!, norm: tapNorm, k: 1 },
      { name: `${gate}.current`, reads: input, norm, k: 1, avoid: `${gate}.preceding` },
    ]
    : [{ name: gate, reads: input, norm, k: variant === "top2" ? 2 : 1 }];
  const shared = variant === "se" || variant === "scmoe";
  const part = (role: MoePart["role"], use?: GateUse): MoePart => ({
    layer: name,
    role,
    ...(opts.block === undefined ? {} : { block: opts.block }),
    ...(use ? { gate: use.name } : {}),
  });

  const std = opts.std ?? 0.02, residStd = opts.residStd ?? std;
  const params = new ParamList()
    .layerNorm(norm, C)
    .add(`${module}.gate.wg`, [C, E], normal(std))
    .add(`${module}.gate.wn`, [C, E], ZEROS);
  if (preceding) params.layerNorm(tapNorm, C);
  if (shared) params.ffn(`${name}.shared`, C, opts.hidden, std, residStd);
  if (combiner !== "add") params.add(`${name}.cg.w`, [C, combiner === "cg1" ? 1 : 2], ZEROS);
  for (let e = 0; e < E; e++) {
    params.ffn(`${module}.experts.${e}`, C, opts.expertHidden ?? opts.hidden, std, residStd, {
      index: e,
      of: E,
    });
  }

  const steps: Step[] = uses.flatMap((use) => gateChain(opts, use, part));
  if (shared) steps.push(sharedExpertStep(opts, combiner, norm, part("shared")));
  steps.push(outputStep(opts, uses, combiner, part("output")));
  return { steps, params: params.specs, aux: uses.map((u) => `${u.name}:aux`) };
}

/** `G` and the rows of the experts: `x = LN(reads)` [S, C], `h` its gate logits [S, E]. */
function gateInput(v: Tensor, p: ParamLookup, norm: string): Tensor {
  return tf.reshape(layerNorm(v, p, norm), [-1, v.shape[2] as number]); // [S, C]
}

/** Route, gate, dispatch, experts and combine of one gate use. */
function gateChain(
  opts: MoeLayerOptions,
  use: GateUse,
  part: (role: MoePart["role"], use?: GateUse) => MoePart,
): Step[] {
  const { name, reads, norm } = use;
  const E = opts.experts, C = opts.dim;
  const rows = (s: StepShape) => routedRows(s, use.k);
  const params = `${opts.module ?? opts.name}.gate`;
  const noise = opts.gateNoise ?? true;
  const logits = (v: Tensor, p: ParamLookup, ctx: { noise: RouteNoise }) => {
    const x = gateInput(v, p, norm); // [S, C]
    const eps = noise ? ctx.noise(name, x.shape[0], E) : null;
    return { x, h: gateLogits(x, p, params, eps) }; // [S, C], [S, E]
  };
  const route: RouteStep = {
    kind: "route",
    name,
    inputs: [reads],
    after: use.avoid ? [use.avoid] : [],
    scores: (v, p, ctx) => logits(v, p, ctx).h,
    decide: (scores, ctx) =>
      decideRoute(scores, {
        nExperts: E,
        k: use.k,
        capacityFactor: ctx.training ? opts.capacityFactor ?? 2 : opts.evalCapacityFactor ?? 2,
        groups: ctx.groups,
        avoid: use.avoid ? ctx.routes.get(use.avoid)!.choice : undefined,
      }),
    moe: part("route", use),
    cost: (s) => ({ ...gateLogitsCost(s, C, E, noise), hostBytes: 4 * s.tokens * E }),
  };
  const gateStep = computeStep({
    name,
    inputs: { v: reads },
    outputs: { send: `${name}:send`, g: `${name}:w`, aux: `${name}:aux` },
    run: ({ v }, p, ctx) => {
      const r = ctx.routes.get(name)!;
      const { x, h } = logits(v, p, ctx);
      const send = tf.gather(x, tf.tensor1d(r.rowToken, "int32")); // [rows, C], by expert
      return { send, g: gateWeights(h, r), aux: auxLoss(h, r) }; // [rows, C], [S, k], []
    },
    cost: (s) =>
      addCosts(
        gateLogitsCost(s, C, E, noise),
        copy(rows(s) * C, 1, s.bytesPerElement), // gather the rows to send
        elementwise(s.tokens * E, 6, s.bytesPerElement), // gate weights and aux loss softmaxes
      ),
  }, part("gate", use));
  const experts = (chunk?: number, input = `${name}:recv`, output = `${name}:out`) =>
    expertsStep(opts, use, part("experts", use), chunk, input, output);
  return [
    route,
    gateStep,
    {
      kind: "dispatch",
      name: `${name}.dispatch`,
      route: name,
      input: `${name}:send`,
      output: `${name}:recv`,
      moe: part("dispatch", use),
      cost: (s) => ({ bytes: rows(s) * C * s.bytesPerElement }),
    },
    experts(),
    {
      kind: "combine",
      name: `${name}.combine`,
      route: name,
      input: `${name}:out`,
      output: `${name}:back`,
      moe: part("combine", use),
      cost: (s) => ({ bytes: rows(s) * C * s.bytesPerElement }),
    },
  ];
}

type RouteNoise = (gate: string, tokens: number, experts: number) => Float32Array | null;

/** Rows one rank sends (and, balanced, receives) for a gate use of `k` choices per token. */
function routedRows(s: StepShape, k: number): number {
  return (s.routedK ?? k) * s.tokens * s.rowsPerChoice;
}

/** `LN(x)` and the gate logits of S tokens, with the noise term in training. */
function gateLogitsCost(s: StepShape, C: number, E: number, noise: boolean): StepCost {
  const b = s.bytesPerElement, S = s.tokens;
  const clean = addCosts(layerNormCost(S, C, b), linearCost(S, C, E, b, false));
  if (!(noise && s.training)) return clean;
  return addCosts(clean, linearCost(S, C, E, b, false), elementwise(S * E, 3, b));
}

/**
 * `E_e(x)` for the rows this rank received, each through its expert e; with
 * `chunk`, for the rows of that chunk of the received rows only.
 */
function expertsStep(
  opts: MoeLayerOptions,
  use: GateUse,
  part: MoePart,
  chunk: number | undefined,
  input: string,
  output: string,
): ComputeStep {
  const C = opts.dim;
  const step = computeStep({
    name: `${use.name}.experts${chunk === undefined ? "" : `.c${chunk}`}`,
    inputs: { recv: input },
    outputs: { out: output },
    run: ({ recv }, p, ctx) => {
      const [first] = expertRange(ctx.rank, ctx.size, opts.experts);
      // Received rows come by (source, expert); group them by expert.
      const { order, inverse, perExpert } = expertMajor(
        ctx.layouts.get(layoutKey(use.name, chunk))!,
      );
      if (order.length === 0) return { out: tf.zeros([0, C]) };
      const x = tf.gather(recv, tf.tensor1d(order, "int32")); // [R, C], by expert
      const ys: Tensor[] = [];
      let off = 0;
      perExpert.forEach((n, local) => {
        if (n === 0) return;
        const expert = `${opts.module ?? opts.name}.experts.${first + local}`;
        ys.push(ffn(tf.slice(x, [off, 0], [n, C]), p, expert));
        off += n;
      });
      const y = ys.length === 1 ? ys[0] : tf.concat(ys); // [R, C], by expert
      return { out: tf.gather(y, tf.tensor1d(inverse, "int32")) }; // [R, C], as received
    },
    cost: (s) => {
      // A balanced route brings each rank k rows per local token, spread over its experts.
      const R = routedRows(s, use.k), local = Math.max(1, opts.experts / s.ranks);
      const perExpert = ffnCost(R / local, C, opts.expertHidden ?? opts.hidden, s.bytesPerElement);
      return addCosts(
        copy(R * C, 3, s.bytesPerElement), // gather by expert, concat, gather back
        ...Array.from(
          { length: local },
          () => addCosts(perExpert, copy(R / local * C, 1, s.bytesPerElement)), // its slice
        ),
      );
    },
  }, {
    ...part,
    chunk: (index, input, output) => expertsStep(opts, use, part, index, input, output),
  });
  return step;
}

/** The permutation from (source, expert) row order to (expert, source) order, and back. */
function expertMajor(counts: number[][]) {
  const nLocal = counts[0]?.length ?? 0;
  const start = counts.map(() => new Array<number>(nLocal));
  let rows = 0;
  counts.forEach((perExpert, src) =>
    perExpert.forEach((n, e) => {
      start[src][e] = rows;
      rows += n;
    })
  );
  const order = new Int32Array(rows);
  const inverse = new Int32Array(rows);
  const perExpert = new Array<number>(nLocal).fill(0);
  let j = 0;
  for (let e = 0; e < nLocal; e++) {
    counts.forEach((c, src) => {
      for (let r = 0; r < c[e]; r++, j++) {
        order[j] = start[src][e] + r;
        inverse[start[src][e] + r] = j;
      }
      perExpert[e] += c[e];
    });
  }
  return { order, inverse, perExpert };
}

/**
 * The shared-expert term `c * SE(x)` with `x = LN(A)`: `c = 1` (SE, and
 * ScMoE's add), `c = sigmoid(x w_cg)` (CG-1), `[c, c'] = softmax(x W_cg)`
 * (CG-2, where `c'` scales the routed term: a second output).
 */
function sharedExpertStep(
  opts: MoeLayerOptions,
  combiner: Combiner,
  norm: string,
  part: MoePart,
): ComputeStep {
  const m = opts.name;
  const outputs: Record<string, string> = { term: `${m}.shared:term` };
  if (combiner === "cg2") outputs.cRouted = `${m}.shared:routed_scale`;
  return computeStep({
    name: `${m}.shared`,
    inputs: { a: opts.input },
    outputs,
    run: ({ a }, p): Record<string, Tensor> => {
      const [B, T] = a.shape;
      const x = layerNorm(a, p, norm); // [B, T, C]
      const se = ffn(x, p, `${m}.shared`); // [B, T, C]
      if (combiner === "add") return { term: se };
      const xw = tf.matMul(tf.reshape(x, [-1, opts.dim]), p(`${m}.cg.w`)); // x W_cg: [S, 1|2]
      const z = tf.reshape(xw, [B, T, -1]); // [B, T, 1|2]
      if (combiner === "cg1") return { term: tf.mul(se, tf.sigmoid(z)) };
      const [c, cRouted] = tf.split(tf.softmax(z, -1), 2, -1); // [B, T, 1] each
      return { term: tf.mul(se, c), cRouted };
    },
    cost: (s) => {
      const b = s.bytesPerElement, S = s.tokens, C = opts.dim;
      return addCosts(
        layerNormCost(S, C, b),
        ffnCost(S, C, opts.hidden, b),
        combiner === "add" ? NO_COST : addCosts(
          linearCost(S, C, combiner === "cg1" ? 1 : 2, b, false),
          elementwise(S * C, 2, b),
        ),
      );
    },
  }, part);
}

/**
 * The block's output, `H` from `A`, the shared term and each gate use's
 * combined rows: the equations of the module doc, one per variant.
 */
function outputStep(
  opts: MoeLayerOptions,
  uses: GateUse[],
  combiner: Combiner,
  part: MoePart,
): ComputeStep {
  const m = opts.name;
  const inputs: Record<string, string> = { a: opts.input };
  uses.forEach((u, j) => {
    inputs[`rows${j}`] = `${u.name}:back`; // E_i of the routed rows, [rows, C]
    inputs[`g${j}`] = `${u.name}:w`; // G, [S, k]
  });
  if (opts.variant === "se" || opts.variant === "scmoe") inputs.se = `${m}.shared:term`;
  if (combiner === "cg2") inputs.cRouted = `${m}.shared:routed_scale`;
  return computeStep({
    name: `${m}.output`,
    inputs,
    outputs: { h: opts.output },
    run: (x, _p, ctx) => {
      const { a } = x; // [B, T, C]
      const [B, T, C] = a.shape;
      /** `sum_i G_i E_i` of gate use j per token, [B, T, C]. */
      const routed = (j: number) =>
        tf.reshape(combineRows(x[`rows${j}`], x[`g${j}`], ctx.routes.get(uses[j].name)!), [
          B,
          T,
          C,
        ]);
      switch (opts.variant) {
        case "top1":
        case "top2": // H = A + sum_i G(x)_i E_i(x)
          return { h: tf.add(a, routed(0)) };
        case "se": // H = A + SE(x) + sum_i G(x)_i E_i(x)
          return { h: tf.addN([a, x.se, routed(0)]) };
        case "scmoe": // H = A + c SE(x) + [c'] sum_i G(t)_i E_i(t)
          return {
            h: tf.addN([a, x.se, combiner === "cg2" ? tf.mul(routed(0), x.cRouted) : routed(0)]),
          };
        case "dgmoe": // H = A + sum_i G(t)_i E_i(t) + sum_i G'(x)_i E_i(x)
          return { h: tf.add(a, tf.addN([routed(0), routed(1)])) };
      }
    },
    cost: (s) => {
      const b = s.bytesPerElement, S = s.tokens, C = opts.dim;
      // Per gate use: pad the rows, gather, weight each choice, add them; then the residual adds.
      const combine = (k: number): StepCost =>
        addCosts(
          copy(routedRows(s, k) * C, 1, b), // pad
          copy(S * C, 2 * k, b), // per choice: gather its rows, slice its weight
          elementwise(S * C, k, b), // weight
        );
      return addCosts(...uses.map((u) => combine(u.k)), elementwise(S * C, 2, b));
    },
  }, part);
}
