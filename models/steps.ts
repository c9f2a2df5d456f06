/**
 * A model as a program: a list of steps over named values. A compute step
 * is a pure function of its input values and parameters (its backward is a
 * vector-Jacobian product, recomputed from its saved inputs); a route step
 * makes a gate's routing decisions off the tape; dispatch and combine steps
 * are the all-to-all communication points. The scheduler (`scheduler.ts`)
 * may reorder steps within their data dependencies, the `inputs` and
 * `outputs` names.
 *
 * You write your own dense steps with {@linkcode computeStep} (inputs and
 * outputs by name), take the MoE layer's steps from `moeLayer`
 * (`moe_layer.ts`), and end a training program in {@linkcode lossStep}.
 * A {@linkcode Network} is the program together with its parameters; it is
 * what `createModel` runs.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Tensor } from "./tf.ts";
import type { Route } from "./gate.ts";
import { crossEntropy, type ParamLookup } from "./layers.ts";
import type { ParamSpec } from "./params.ts";
import {
  addCosts,
  type CostFn,
  crossEntropyCost,
  elementwise,
  type ExchangeCost,
  NO_COST,
  type StepShape,
} from "./cost.ts";

/** What the steps of one run read besides their inputs. */
export interface RunContext {
  /** Token ids [B, T], row-major. */
  tokens: Int32Array;
  /** Next-token targets [B, T] (loss programs only). */
  targets?: Int32Array;
  /** B. */
  batchSize: number;
  /** T. */
  seqLen: number;
  /** Training (gate noise, training capacity) or evaluation. */
  training: boolean;
  /** Routing groups of the local tokens (see `RouteOptions.groups` of `gate.ts`). */
  groups: number;
  /** This rank in its expert-parallel group (0 without one). */
  rank: number;
  /** Ranks in the group (1 without one): rank r holds experts `expertRange(r, size, E)`. */
  size: number;
  /**
   * Gate noise eps [tokens, experts] of gate application `gate` in this
   * run, the same on every call; null in evaluation.
   */
  noise(gate: string, tokens: number, experts: number): Float32Array | null;
  /** Routes decided so far, by gate application. */
  routes: Map<string, Route>;
  /** Rows received per (source rank, local expert), by {@linkcode layoutKey}. */
  layouts: Map<string, number[][]>;
}

/**
 * Where a step sits in an MoE layer: what the scheduler reads to find each
 * gate application's chain (route, gate, dispatch, experts, combine) and the
 * layer's output, which consumes the combined rows.
 */
export interface MoePart {
  /** The MoE layer's name. */
  layer: string;
  /** The layer's block index in overlap reports (default: its order among the program's layers). */
  block?: number;
  /** The gate application the step belongs to; absent for the shared expert and the output. */
  gate?: string;
  /** What the step does in the layer. */
  role:
    | "route"
    | "gate"
    | "dispatch"
    | "experts"
    | "combine"
    | "split"
    | "merge"
    | "shared"
    | "output";
  /**
   * The expert step only: the same computation on chunk `index` of the
   * received rows, reading value `input` and making `output` (pipelining).
   */
  chunk?: (index: number, input: string, output: string) => ComputeStep;
}

/** A differentiable step: `outputs = run(inputs)`; build it with {@linkcode computeStep}. */
export interface ComputeStep {
  /** Which kind of step. */
  kind: "compute";
  /** Unique step name (used in traces). */
  name: string;
  /** Names of the input values. */
  inputs: string[];
  /** Names of the output values. */
  outputs: string[];
  /** The forward computation, on the inputs in the order of `inputs`; must not dispose them. */
  run(x: Tensor[], p: ParamLookup, ctx: RunContext): Tensor[];
  /** Its part in an MoE layer, if any. */
  moe?: MoePart;
  /** Its forward cost from the shapes, for the simulator (`simulate.ts`); none: not counted. */
  cost?: CostFn;
}

/** Off-tape routing: gate scores, read to the host, decided into a {@linkcode Route}. */
export interface RouteStep {
  /** Which kind of step. */
  kind: "route";
  /** The gate application; the route is stored under this name. */
  name: string;
  /** The tap value. */
  inputs: [string];
  /** Routes that must be decided before this one (DGMoE's current half avoids the preceding's choices). */
  after: string[];
  /** Gate logits [S, E] of the tap. */
  scores(x: Tensor, p: ParamLookup, ctx: RunContext): Tensor;
  /** The decisions from the scores. */
  decide(scores: Float32Array, ctx: RunContext): Route;
  /** Its part in its MoE layer. */
  moe?: MoePart;
  /** Its cost (scores, host read) from the shapes, for the simulator; none: not counted. */
  cost?: CostFn;
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
  /** Its part in its MoE layer. */
  moe?: MoePart;
  /** The bytes one rank sends in it (this chunk's, when pipelined), for the simulator. */
  cost?: (shape: StepShape) => ExchangeCost;
}

/** One step of the program. */
export type Step = ComputeStep | RouteStep | ExchangeStep;

/** A model the library runs: its parameters and its program. */
export interface Network {
  /** Every parameter of the full model (all experts), in a fixed order. */
  readonly params: ParamSpec[];
  /**
   * The program. With `withLoss` it must make the values `loss`, `lm_loss`
   * and `aux_loss` (see {@linkcode lossStep}); without, the value `logits`.
   */
  program(withLoss: boolean): Step[];
}

/** What {@linkcode computeStep} builds a step from: inputs and outputs by name. */
export interface ComputeSpec<I extends string, O extends string> {
  /** Unique step name, e.g. `blocks.0.mlp` (traces and overlap reports show it). */
  name: string;
  /** Each argument of `run` and the value it reads, e.g. `{ a: "a0" }`. */
  inputs: { readonly [K in I]: string };
  /** Each result of `run` and the value it makes, e.g. `{ h: "h0" }`. */
  outputs: { readonly [K in O]: string };
  /** The forward computation; it must not dispose its inputs. */
  run(x: { [K in I]: Tensor }, p: ParamLookup, ctx: RunContext): { [K in O]: Tensor };
  /**
   * Its forward cost on one rank from the shapes (`cost.ts`), for the
   * simulator (`simulate.ts`); without one the simulator counts it as free
   * and lists it in `SimPass.uncosted`.
   */
  cost?: CostFn;
}

/**
 * A compute step with its inputs and outputs named: `run` gets each input
 * under its argument name and returns each output under its result name.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { computeStep } from "./steps.ts";
 * import { ffn, layerNorm } from "./layers.ts";
 * // H_0 = A_0 + MLP_0(LN2(A_0))
 * const mlp = computeStep({
 *   name: "blocks.0.mlp",
 *   inputs: { a: "a0" },
 *   outputs: { h: "h0" },
 *   run: ({ a }, p) => ({ h: tf.add(a, ffn(layerNorm(a, p, "blocks.0.ln2"), p, "blocks.0.mlp")) }),
 * });
 * mlp.inputs; // ["a0"]
 * ```
 */
export function computeStep<I extends string, O extends string>(
  spec: ComputeSpec<I, O>,
  moe?: MoePart,
): ComputeStep {
  const args = Object.keys(spec.inputs) as I[];
  const results = Object.keys(spec.outputs) as O[];
  return {
    kind: "compute",
    name: spec.name,
    inputs: args.map((k) => spec.inputs[k]),
    outputs: results.map((k) => spec.outputs[k]),
    run: (x, p, ctx) => {
      const named = Object.fromEntries(args.map((k, j) => [k, x[j]])) as { [K in I]: Tensor };
      const out = spec.run(named, p, ctx);
      return results.map((k) => out[k]);
    },
    ...(moe ? { moe } : {}),
    ...(spec.cost ? { cost: spec.cost } : {}),
  };
}

/**
 * How the load-balancing losses of several MoE layers enter the loss, each
 * weighted by `auxWeight` w:
 * - `"sum"` (the paper's reading, GShard's `L = l_nll + k * sum_layers l_aux`
 *   and Switch's "for each Switch layer ... added to the total loss"): every
 *   MoE layer's loss is weighted w and the layers are summed; a layer whose
 *   gate is used twice (DGMoE) counts once, with the mean of its uses.
 * - `"mean"`: the mean over every gate use of the model is weighted w, so
 *   each of L layers gets w / L.
 */
export type AuxConvention = "sum" | "mean";

/** The conventions, for validation. */
export const AUX_CONVENTIONS: readonly AuxConvention[] = ["sum", "mean"];

/** Options of {@linkcode lossStep}. */
export interface LossOptions {
  /** The logits value, [B, T, V] (default `logits`). */
  logits?: string;
  /**
   * The MoE layers' load-balancing loss values: one entry per layer, its
   * `aux` (one value per gate use), or a single value (a layer of its own).
   */
  aux: (string | readonly string[])[];
  /** The weight w (0.01 in the paper). */
  auxWeight: number;
  /** Width of the logits, V: only for the step's cost estimate (none: not counted). */
  vocabSize?: number;
  /** How the layers' losses are combined (default `"sum"`, the paper's reading). */
  auxConvention?: AuxConvention;
}

/**
 * The training loss, making the values `loss`, `lm_loss` and `aux_loss`
 * (the mean of every gate use's balancing loss, 0 without MoE layers; 1 is
 * balanced): `loss = CE(logits, targets) + w * sum_l mean(aux_l)` with the
 * `"sum"` convention, `CE + w * mean(aux)` over all uses with `"mean"`
 * ({@linkcode AuxConvention}). The targets are the run's next tokens.
 *
 * @example
 * ```ts
 * import { lossStep } from "./steps.ts";
 * // Two MoE layers, each weighted 0.01.
 * lossStep({ aux: [["blocks.1.moe.gate:aux"], ["blocks.3.moe.gate:aux"]], auxWeight: 0.01 })
 *   .outputs; // ["loss", "lm_loss", "aux_loss"]
 * ```
 */
export function lossStep(opts: LossOptions): ComputeStep {
  const layers = opts.aux.map((a) => typeof a === "string" ? [a] : [...a]);
  const convention = opts.auxConvention ?? "sum";
  if (!AUX_CONVENTIONS.includes(convention)) {
    throw new RangeError(`auxConvention must be sum or mean, not ${JSON.stringify(convention)}`);
  }
  const names = layers.flat();
  const aux = Object.fromEntries(names.map((v, j) => [`aux${j}`, v]));
  return computeStep({
    name: "loss",
    inputs: { logits: opts.logits ?? "logits", ...aux },
    outputs: { loss: "loss", lm: "lm_loss", aux: "aux_loss" },
    run: ({ logits, ...auxes }, _p, ctx) => {
      const targets = tf.tensor2d(ctx.targets!, [ctx.batchSize, ctx.seqLen], "int32");
      const lm = crossEntropy(logits, targets);
      const terms = names.map((_, j) => (auxes as Record<string, Tensor>)[`aux${j}`]);
      const auxMean = terms.length ? tf.mean(tf.stack(terms)) : tf.scalar(0);
      let j = 0;
      const weighted = convention === "mean" || terms.length === 0 ? auxMean : tf.addN(
        layers.map((l) => {
          const mine = terms.slice(j, j += l.length);
          return mine.length === 1 ? mine[0] : tf.mean(tf.stack(mine));
        }),
      );
      return { loss: tf.add(lm, tf.mul(opts.auxWeight, weighted)), lm, aux: auxMean };
    },
    ...(opts.vocabSize
      ? {
        cost: (s: StepShape) =>
          addCosts(
            crossEntropyCost(s.tokens, opts.vocabSize!, s.bytesPerElement),
            opts.aux.length ? elementwise(opts.aux.length, 3, s.bytesPerElement) : NO_COST,
          ),
      }
      : {}),
  });
}

/** The key under which an exchange's received counts are kept in {@linkcode RunContext.layouts}. */
export function layoutKey(route: string, chunk?: number): string {
  return chunk === undefined ? route : `${route}#${chunk}`;
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
 * import { chunkRows } from "./steps.ts";
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
