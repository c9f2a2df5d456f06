/**
 * The model as a program: an explicit list of steps over named values. A
 * compute step is a pure function of its input values and parameters (its
 * backward is a vector-Jacobian product, recomputed from its saved inputs);
 * a route step makes the gate's routing decisions off the tape; dispatch and
 * combine steps are the all-to-all communication points. Steps are listed in
 * a valid serial order: each MoE gate's route and dispatch come right after
 * its tap exists, the combined result is consumed by the block's output step
 * right before the residual add. A scheduler may reorder steps within their
 * data dependencies (the `inputs` and `outputs` names).
 *
 * Values: `h-1` embedding, `a{i}` after attention of block i, `h{i}` block
 * output, `{gate}:send|w|aux|recv|out|back` per gate application, `logits`,
 * `loss`, `lm_loss`, `aux_loss`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Tensor } from "./tf.ts";
import {
  gateTaps,
  hasSharedExpert,
  isMoeBlock,
  type ModelConfig,
  topK,
  valueNames as v,
} from "./config.ts";
import { auxLoss, combineRows, decideRoute, gateLogits, gateWeights, type Route } from "./gate.ts";
import {
  attention,
  crossEntropy,
  embed,
  ffn,
  head,
  layerNorm,
  type ParamLookup,
} from "./layers.ts";

/** What the steps of one run read besides their inputs. */
export interface RunContext {
  /** The model configuration. */
  cfg: ModelConfig;
  /** Token ids [B, T], row-major. */
  tokens: Int32Array;
  /** Next-token targets [B, T] (loss programs only). */
  targets?: Int32Array;
  /** B. */
  batchSize: number;
  /** T. */
  seqLen: number;
  /** Capacity factor of this run (training or evaluation). */
  capacityFactor: number;
  /** Routing groups of the local tokens (see {@linkcode RouteOptions.groups}). */
  groups: number;
  /** Gate noise eps [B*T, E] of a gate application, or null without noise. */
  noise(gate: string): Float32Array | null;
  /** Routes decided so far, by gate application. */
  routes: Map<string, Route>;
  /** Rows received per (source rank, local expert), by gate application. */
  layouts: Map<string, number[][]>;
  /** Global index of this rank's first expert. */
  firstExpert: number;
}

/** A differentiable step: `outputs = run(inputs)`. */
export interface ComputeStep {
  /** Which kind of step. */
  kind: "compute";
  /** Unique step name (used in traces). */
  name: string;
  /** Names of the input values. */
  inputs: string[];
  /** Names of the output values. */
  outputs: string[];
  /** The forward computation; must not dispose its inputs. */
  run(x: Tensor[], p: ParamLookup, ctx: RunContext): Tensor[];
}

/** Off-tape routing: gate scores, read to the host, decided into a {@linkcode Route}. */
export interface RouteStep {
  /** Which kind of step. */
  kind: "route";
  /** The gate application; the route is stored under this name. */
  name: string;
  /** The tap value. */
  inputs: [string];
  /** Gate logits [S, E] of the tap. */
  scores(x: Tensor, p: ParamLookup, ctx: RunContext): Tensor;
  /** The decisions from the scores. */
  decide(scores: Float32Array, ctx: RunContext): Route;
}

/**
 * An all-to-all. `dispatch` sends the rows of each expert to the rank that
 * holds it; `combine` sends expert outputs back to the rows' sources.
 */
export interface ExchangeStep {
  /** Which exchange: rows to their experts, or expert outputs back. */
  kind: "dispatch" | "combine";
  /** Unique step name (also the collective's tag stem). */
  name: string;
  /** The gate application whose route this exchange follows. */
  route: string;
  /** The value sent, [rows, C]. */
  input: string;
  /** The value received, [rows, C]. */
  output: string;
  /** Pipelining: this exchange moves chunk `index` of `of` of the route's rows (see {@linkcode chunkRows}). */
  chunk?: { index: number; of: number };
}

/** One step of the program. */
export type Step = ComputeStep | RouteStep | ExchangeStep;

/** One application of an MoE layer's gate and experts. */
interface GateUse {
  /** Name, e.g. `blocks.3.moe.gate` (DGMoE: `….gate.preceding` and `….gate.current`). */
  name: string;
  /** Block index. */
  block: number;
  /** The value the experts read. */
  tap: string;
  /** The layer norm applied to the tap. */
  norm: string;
  /** DGMoE's current half: the gate use whose choices it must avoid. */
  avoid?: string;
}

/**
 * The program of the whole model; with `withLoss`, it ends in the loss
 * (`loss = lm_loss + auxLossWeight * aux_loss`), otherwise in `logits`.
 *
 * @example
 * ```ts
 * import { buildProgram } from "./program.ts";
 * import { resolveConfig } from "./config.ts";
 * const steps = buildProgram(resolveConfig({ variant: "scmoe", pos: 2 }), true);
 * steps.map((s) => s.name); // ["embed", "blocks.0.attn", "blocks.1.moe.gate", ...]
 * ```
 */
export function buildProgram(cfg: ModelConfig, withLoss: boolean): Step[] {
  const steps: Step[] = [embedStep()];
  const auxValues: string[] = [];
  for (let i = 0; i < cfg.nLayer; i++) {
    steps.push(attentionStep(cfg, i));
    if (!isMoeBlock(cfg, i)) {
      steps.push(mlpStep(i));
      continue;
    }
    const uses = gateUses(cfg, i);
    for (const use of uses) {
      const at = steps.findIndex((s) => s.kind === "compute" && s.outputs.includes(use.tap));
      steps.splice(at + 1, 0, ...gateSteps(cfg, use));
      auxValues.push(`${use.name}:aux`);
    }
    if (hasSharedExpert(cfg)) steps.push(sharedExpertStep(cfg, i));
    steps.push(moeOutputStep(cfg, i, uses));
  }
  steps.push({
    kind: "compute",
    name: "head",
    inputs: [v.output(cfg.nLayer - 1)],
    outputs: ["logits"],
    run: ([h], p) => [head(h, p)], // [B, T, V]
  });
  if (withLoss) steps.push(lossStep(cfg, auxValues));
  return steps;
}

function gateUses(cfg: ModelConfig, i: number): GateUse[] {
  const taps = gateTaps(cfg, i);
  const base = `blocks.${i}.moe.gate`;
  return taps.map(({ tap, preceding }) => {
    const name = taps.length === 1 ? base : `${base}.${preceding ? "preceding" : "current"}`;
    const norm = preceding ? `blocks.${i}.moe.ln_tap` : `blocks.${i}.ln2`;
    const avoid = taps.length > 1 && !preceding ? `${base}.preceding` : undefined;
    return { name, block: i, tap, norm, avoid };
  });
}

function embedStep(): ComputeStep {
  return {
    kind: "compute",
    name: "embed",
    inputs: [],
    outputs: [v.input(0)],
    run: (_, p, ctx) => {
      const tokens = tf.tensor2d(ctx.tokens, [ctx.batchSize, ctx.seqLen], "int32");
      return [embed(tokens, p)]; // [B, T, C]
    },
  };
}

/** `A_i = H_{i-1} + Attn_i(LN1(H_{i-1}))`. */
function attentionStep(cfg: ModelConfig, i: number): ComputeStep {
  const b = `blocks.${i}`;
  return {
    kind: "compute",
    name: `${b}.attn`,
    inputs: [v.input(i)],
    outputs: [v.attn(i)],
    run: ([h], p) => [tf.add(h, attention(layerNorm(h, p, `${b}.ln1`), p, `${b}.attn`, cfg.nHead))],
  };
}

/** Dense block: `H_i = A_i + MLP_i(LN2(A_i))`. */
function mlpStep(i: number): ComputeStep {
  const b = `blocks.${i}`;
  return {
    kind: "compute",
    name: `${b}.mlp`,
    inputs: [v.attn(i)],
    outputs: [v.output(i)],
    run: ([a], p) => [tf.add(a, ffn(layerNorm(a, p, `${b}.ln2`), p, `${b}.mlp`))],
  };
}

/** The gate's input: the normalised tap as rows, [S, C]. */
function gateInput(tap: tf.Tensor, p: ParamLookup, norm: string): tf.Tensor {
  return tf.reshape(layerNorm(tap, p, norm), [-1, tap.shape[2] as number]);
}

/** Route, gate, dispatch, experts and combine of one gate use. */
function gateSteps(cfg: ModelConfig, use: GateUse): Step[] {
  const { name, tap, norm } = use;
  const gate = `blocks.${use.block}.moe.gate`;
  const route: RouteStep = {
    kind: "route",
    name,
    inputs: [tap],
    scores: (x, p, ctx) => gateLogits(gateInput(x, p, norm), p, gate, ctx.noise(name)),
    decide: (scores, ctx) =>
      decideRoute(scores, {
        nExperts: cfg.nExperts,
        k: topK(cfg),
        capacityFactor: ctx.capacityFactor,
        groups: ctx.groups,
        avoid: use.avoid ? ctx.routes.get(use.avoid)!.choice : undefined,
      }),
  };
  // G(T) and the rows each expert reads: x = LN(T), h = gate logits of x.
  const gateStep: ComputeStep = {
    kind: "compute",
    name,
    inputs: [tap],
    outputs: [`${name}:send`, `${name}:w`, `${name}:aux`],
    run: ([t], p, ctx) => {
      const r = ctx.routes.get(name)!;
      const x = gateInput(t, p, norm); // [S, C]
      const h = gateLogits(x, p, gate, ctx.noise(name)); // [S, E]
      const send = tf.gather(x, tf.tensor1d(r.rowToken, "int32")); // [rows, C], by expert
      return [send, gateWeights(h, r), auxLoss(h, r)]; // [rows, C], [S, k], []
    },
  };
  return [
    route,
    gateStep,
    {
      kind: "dispatch",
      name: `${name}.dispatch`,
      route: name,
      input: `${name}:send`,
      output: `${name}:recv`,
    },
    expertsStep(cfg, use),
    {
      kind: "combine",
      name: `${name}.combine`,
      route: name,
      input: `${name}:out`,
      output: `${name}:back`,
    },
  ];
}

/**
 * `E_e(x)` for the rows this rank received, each through its expert e; with
 * `chunk`, for the rows of that chunk only.
 */
function expertsStep(cfg: ModelConfig, use: GateUse, chunk?: number): ComputeStep {
  const { name } = use;
  const sfx = chunk === undefined ? "" : `.c${chunk}`;
  const layout = chunk === undefined ? name : `${name}#${chunk}`;
  return {
    kind: "compute",
    name: `${name}.experts${sfx}`,
    inputs: [`${name}:recv${sfx}`],
    outputs: [`${name}:out${sfx}`],
    run: ([recv], p, ctx) => {
      const C = cfg.nEmbd;
      // Received rows come by (source, expert); group them by expert.
      const { order, inverse, perExpert } = expertMajor(ctx.layouts.get(layout)!);
      if (order.length === 0) return [tf.zeros([0, C])];
      const x = tf.gather(recv, tf.tensor1d(order, "int32")); // [R, C]
      const ys: tf.Tensor[] = [];
      let off = 0;
      perExpert.forEach((n, local) => {
        if (n === 0) return;
        const e = ctx.firstExpert + local;
        ys.push(ffn(tf.slice(x, [off, 0], [n, C]), p, `blocks.${use.block}.moe.experts.${e}`));
        off += n;
      });
      const y = ys.length === 1 ? ys[0] : tf.concat(ys); // [R, C], by expert
      return [tf.gather(y, tf.tensor1d(inverse, "int32"))]; // [R, C], as received
    },
  };
}

/** The key under which an exchange's received counts are kept in {@linkcode RunContext.layouts}. */
export function layoutKey(step: ExchangeStep): string {
  return step.chunk ? `${step.route}#${step.chunk.index}` : step.route;
}

/** Rows per expert that an exchange moves: the route's, or its chunk's share. */
export function exchangedPerExpert(step: ExchangeStep, route: Route): Int32Array {
  if (!step.chunk) return route.perExpert;
  const { index, of } = step.chunk;
  return route.perExpert.map((n) => chunkBounds(n, index + 1, of) - chunkBounds(n, index, of));
}

function chunkBounds(n: number, j: number, of: number): number {
  return Math.floor((n * j) / of);
}

/**
 * Chunk `index` of `of` of a route's dispatch rows (sorted by expert): for
 * every expert, the `index`-th of `of` near-equal runs of its rows. The
 * chunks are again sorted by expert, and together hold every row once.
 *
 * @example
 * ```ts
 * import { chunkRows } from "./program.ts";
 * chunkRows(Int32Array.of(3, 2), 0, 2); // [0, 3]: expert 0 rows 0, expert 1 row 3
 * ```
 */
export function chunkRows(perExpert: Int32Array, index: number, of: number): Int32Array {
  const rows: number[] = [];
  let start = 0;
  for (const n of perExpert) {
    for (let r = chunkBounds(n, index, of); r < chunkBounds(n, index + 1, of); r++) {
      rows.push(start + r);
    }
    start += n;
  }
  return Int32Array.from(rows);
}

/**
 * Tutel-style pipelining of one gate use: its rows are split into `chunks`
 * chunks whose dispatch, expert and combine stages overlap. Replaces the
 * gate's dispatch, experts and combine steps with
 * `split, d0, d1, e0, c0, d2, e1, c1, …, merge` (a valid serial order:
 * chunk j+1's dispatch is in flight while chunk j's experts run, and chunk
 * j's combine while chunk j+1's experts run).
 *
 * @example
 * ```ts
 * import { buildProgram, pipelineGate } from "./program.ts";
 * import { resolveConfig } from "./config.ts";
 * const cfg = resolveConfig({ variant: "top2" });
 * const steps = pipelineGate(cfg, buildProgram(cfg, true), "blocks.1.moe.gate", 2);
 * steps.some((s) => s.name === "blocks.1.moe.gate.experts.c1"); // true
 * ```
 */
export function pipelineGate(
  cfg: ModelConfig,
  program: Step[],
  gate: string,
  chunks: number,
): Step[] {
  const at = program.findIndex((s) => s.kind === "dispatch" && s.route === gate);
  if (at < 0) throw new RangeError(`no dispatch of gate "${gate}"`);
  if (chunks <= 1) return program;
  const [, experts, combine] = program.slice(at, at + 3);
  if (experts.name !== `${gate}.experts` || combine.name !== `${gate}.combine`) {
    throw new RangeError(`gate "${gate}" is already pipelined or reordered`);
  }
  const block = Number(/^blocks\.(\d+)\./.exec(gate)?.[1]);
  const use: GateUse = { name: gate, block, tap: "", norm: "" };
  const ids = Array.from({ length: chunks }, (_, j) => j);
  const exchange = (kind: "dispatch" | "combine", j: number): ExchangeStep => ({
    kind,
    name: `${gate}.${kind}.c${j}`,
    route: gate,
    input: `${gate}:${kind === "dispatch" ? "send" : "out"}.c${j}`,
    output: `${gate}:${kind === "dispatch" ? "recv" : "back"}.c${j}`,
    chunk: { index: j, of: chunks },
  });
  const split: ComputeStep = {
    kind: "compute",
    name: `${gate}.split`,
    inputs: [`${gate}:send`],
    outputs: ids.map((j) => `${gate}:send.c${j}`),
    run: ([send], _p, ctx) => {
      const per = ctx.routes.get(gate)!.perExpert;
      return ids.map((j) => tf.gather(send, tf.tensor1d(chunkRows(per, j, chunks), "int32"))); // [rows_j, C]
    },
  };
  const merge: ComputeStep = {
    kind: "compute",
    name: `${gate}.merge`,
    inputs: ids.map((j) => `${gate}:back.c${j}`),
    outputs: [`${gate}:back`],
    run: (backs, _p, ctx) => {
      const per = ctx.routes.get(gate)!.perExpert;
      const order = Int32Array.from(ids.flatMap((j) => [...chunkRows(per, j, chunks)]));
      const inverse = new Int32Array(order.length);
      order.forEach((row, i) => (inverse[row] = i));
      return [tf.gather(tf.concat(backs), tf.tensor1d(inverse, "int32"))]; // [rows, C], by expert
    },
  };
  const stages: Step[] = [split, exchange("dispatch", 0)];
  for (const j of ids) {
    if (j + 1 < chunks) stages.push(exchange("dispatch", j + 1));
    stages.push(expertsStep(cfg, use, j), exchange("combine", j));
  }
  stages.push(merge);
  // The gate's own dispatch, experts and combine are consecutive in a built program.
  return [...program.slice(0, at), ...stages, ...program.slice(at + 3)];
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
 * The shared-expert term of block i, `c * SE(x)` with `x = LN2(A_i)`: SE uses
 * c = 1; ScMoE's CG-1 `c = sigmoid(x w_cg)`, add `c = 1`, CG-2
 * `[c, c'] = softmax(x W_cg)` where c' scales the routed term (second output).
 */
function sharedExpertStep(cfg: ModelConfig, i: number): ComputeStep {
  const m = `blocks.${i}.moe`;
  const combiner = cfg.variant === "scmoe" ? cfg.combiner : "add";
  return {
    kind: "compute",
    name: `${m}.shared`,
    inputs: [v.attn(i)],
    outputs: combiner === "cg2"
      ? [`${m}.shared:term`, `${m}.shared:routed_scale`]
      : [`${m}.shared:term`],
    run: ([a], p) => {
      const x = layerNorm(a, p, `blocks.${i}.ln2`); // [B, T, C]
      const se = ffn(x, p, `${m}.shared`); // [B, T, C]
      if (combiner === "add") return [se];
      const logits = tf.matMul(tf.reshape(x, [-1, cfg.nEmbd]), p(`${m}.cg.w`)); // [S, 1|2]
      const [B, T] = a.shape;
      if (combiner === "cg1") return [tf.mul(se, tf.reshape(tf.sigmoid(logits), [B, T, 1]))];
      const [c, cRouted] = tf.split(tf.reshape(tf.softmax(logits, -1), [B, T, 2]), 2, -1); // [B, T, 1] each
      return [tf.mul(se, c), cRouted];
    },
  };
}

/**
 * The MoE block's output: `H_i = A_i + [c * SE(LN2(A_i))] + [c'] * sum_uses sum_j G_j E_j(T)`
 * (top-1/top-2: no shared term; DGMoE: two uses of one gate and expert set).
 */
function moeOutputStep(cfg: ModelConfig, i: number, uses: GateUse[]): ComputeStep {
  const m = `blocks.${i}.moe`;
  const shared = hasSharedExpert(cfg) ? [`${m}.shared:term`] : [];
  const scaled = cfg.variant === "scmoe" && cfg.combiner === "cg2"
    ? [`${m}.shared:routed_scale`]
    : [];
  return {
    kind: "compute",
    name: `${m}.output`,
    inputs: [
      v.attn(i),
      ...shared,
      ...scaled,
      ...uses.flatMap((u) => [`${u.name}:back`, `${u.name}:w`]),
    ],
    outputs: [v.output(i)],
    run: (x, _p, ctx) => {
      const [a] = x;
      const [B, T, C] = a.shape;
      const terms = uses.map((u, j) => {
        const [back, w] = x.slice(1 + shared.length + scaled.length + 2 * j);
        return combineRows(back, w, ctx.routes.get(u.name)!); // [S, C]
      });
      let routed = tf.reshape(terms.length === 1 ? terms[0] : tf.addN(terms), [B, T, C]);
      if (scaled.length) routed = tf.mul(routed, x[2]);
      return [shared.length ? tf.addN([a, x[1], routed]) : tf.add(a, routed)];
    },
  };
}

/** `loss = CE(logits, targets) + auxLossWeight * mean(aux over gate uses)`. */
function lossStep(cfg: ModelConfig, auxValues: string[]): ComputeStep {
  return {
    kind: "compute",
    name: "loss",
    inputs: ["logits", ...auxValues],
    outputs: ["loss", "lm_loss", "aux_loss"],
    run: ([logits, ...aux], _p, ctx) => {
      const targets = tf.tensor2d(ctx.targets!, [ctx.batchSize, ctx.seqLen], "int32");
      const lm = crossEntropy(logits, targets);
      const auxMean = aux.length ? tf.mean(tf.stack(aux)) : tf.scalar(0);
      return [tf.add(lm, tf.mul(cfg.auxLossWeight, auxMean)), lm, auxMean];
    },
  };
}
