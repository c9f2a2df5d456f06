/**
 * What a step of a program costs, from its shapes: the FLOP and byte counts
 * that the simulator (`simulate.ts`) turns into time at a device's rates.
 * Each step carries its own estimate (`ComputeStep.cost`, `RouteStep.cost`,
 * `ExchangeStep.cost`), written next to the code it estimates (`gpt.ts`,
 * `moe_layer.ts`, `steps.ts`, `scheduler.ts`) from the helpers here.
 *
 * The counts are of one rank's forward pass on its own micro-batch, as the
 * kernels of this project run it (tfjs, nothing fused):
 *
 * - `flops`: matrix-multiply FLOPs (2 per multiply-add), the part a device's
 *   matmul rate (tensor cores) applies to;
 * - `batchedFlops`: FLOPs of the many small matrix multiplies of attention's
 *   heads (`Q K^T`, `softmax(.) V`), which reach a lower rate;
 * - `bytes`: memory traffic of every other kernel (element-wise ops, norms,
 *   softmax, gathers), each reading its inputs and writing its output once;
 * - `kernels`: kernels launched, each paying the device's per-kernel
 *   dispatch cost;
 * - `tanh`: elements through tanh (GELU's), slow on a CPU without a vector
 *   tanh, free where it is fused into a GPU kernel;
 * - `hostBytes`: bytes read back to the host (the routing scores, decided in
 *   JavaScript).
 *
 * An exchange's estimate is the bytes one rank sends in it, to every rank
 * including itself (the simulator keeps `1/N` local).
 *
 * @module
 */

/** The shapes a step's cost depends on: one rank's share of one step. */
export interface StepShape {
  /** Sequences per rank, B. */
  batch: number;
  /** Tokens per sequence, T. */
  seq: number;
  /** Tokens per rank, `S = B * T`. */
  tokens: number;
  /** Ranks of the expert-parallel group, N. */
  ranks: number;
  /** A training step (gate noise on) or a forward-only one. */
  training: boolean;
  /** Bytes per activation element on the device (4 for float32, 2 for bf16). */
  bytesPerElement: number;
  /**
   * Rows an expert receives per routed choice, relative to a perfectly
   * balanced route without drops (1): above 1 for padding to capacity or
   * imbalance, below 1 for drops.
   */
  rowsPerChoice: number;
  /**
   * Routed choices per token to assume instead of the layer's own `k`
   * (cost only; e.g. 12 for a LongCat-Flash-like shape). Default: the layer's.
   */
  routedK?: number;
}

/** One forward pass of one step on one rank. */
export interface StepCost {
  /** Matrix-multiply FLOPs. */
  flops: number;
  /** FLOPs of attention's per-head (batched, small) matrix multiplies. */
  batchedFlops?: number;
  /** Memory traffic of the other kernels, in bytes. */
  bytes: number;
  /** Kernels launched. */
  kernels: number;
  /** Memory traffic of gathers, transposes, concats and slices, in bytes. */
  copyBytes?: number;
  /** Elements through tanh (GELU's). */
  tanh?: number;
  /** Bytes read back to the host (routing scores). */
  hostBytes?: number;
}

/** What one rank sends in one exchange. */
export interface ExchangeCost {
  /** Bytes sent in all, to every rank of the group including itself. */
  bytes: number;
}

/** A step's cost estimate as a function of the shapes. */
export type CostFn = (shape: StepShape) => StepCost;

/** The cost of nothing. */
export const NO_COST: StepCost = { flops: 0, bytes: 0, kernels: 0 };

const OPTIONAL = ["batchedFlops", "copyBytes", "tanh", "hostBytes"] as const;

/** Adds costs. */
export function addCosts(...parts: StepCost[]): StepCost {
  const out: StepCost = { flops: 0, bytes: 0, kernels: 0 };
  for (const p of parts) {
    out.flops += p.flops;
    out.bytes += p.bytes;
    out.kernels += p.kernels;
    for (const k of OPTIONAL) if (p[k]) out[k] = (out[k] ?? 0) + p[k]!;
  }
  return out;
}

/** `c` with its work (everything but the kernels) scaled by `f`: a chunk of the rows. */
export function scaleCost(c: StepCost, f: number): StepCost {
  const out: StepCost = { flops: c.flops * f, bytes: c.bytes * f, kernels: c.kernels };
  for (const k of OPTIONAL) if (c[k]) out[k] = c[k]! * f;
  return out;
}

/** `n` element-wise passes over `elements` elements: each reads one tensor and writes one. */
export function elementwise(elements: number, passes: number, b: number): StepCost {
  return { flops: 0, bytes: 2 * elements * passes * b, kernels: passes };
}

/** `n` copying passes (gather, transpose, concat, slice) over `elements` elements. */
export function copy(elements: number, passes: number, b: number): StepCost {
  return { flops: 0, bytes: 0, kernels: passes, copyBytes: 2 * elements * passes * b };
}

/** `x W` of `rows` rows, `[rows, cin] x [cin, cout]`, with a bias add when `bias`. */
export function linearCost(
  rows: number,
  cin: number,
  cout: number,
  b: number,
  bias = true,
): StepCost {
  const mm: StepCost = { flops: 2 * rows * cin * cout, bytes: 0, kernels: 1 };
  return bias ? addCosts(mm, elementwise(rows * cout, 1, b)) : mm;
}

/** `layerNorm` of `rows x dim` (`layers.ts`: moments, sub, rsqrt, mul, mul, add: 8 kernels). */
export function layerNormCost(rows: number, dim: number, b: number): StepCost {
  return elementwise(rows * dim, 8, b);
}

/** GELU, tanh approximation, of `elements` elements (`layers.ts`: 9 element-wise kernels). */
export function geluCost(elements: number, b: number): StepCost {
  return { ...elementwise(elements, 9, b), tanh: elements };
}

/** `FFN(x)` of `rows` rows: two linears and a GELU. */
export function ffnCost(rows: number, dim: number, hidden: number, b: number): StepCost {
  return addCosts(
    linearCost(rows, dim, hidden, b),
    geluCost(rows * hidden, b),
    linearCost(rows, hidden, dim, b),
  );
}

/**
 * Causal attention of `B` sequences of `T` tokens, width `C`, `nh` heads,
 * from its input to its output projection (`layers.ts`'s `attention`): the
 * QKV projection, the head transposes, `Q K^T` and `softmax(.) V` over the
 * full `T x T` scores (masked, not skipped), the output projection.
 */
export function attentionCost(B: number, T: number, C: number, nh: number, b: number): StepCost {
  const S = B * T, scores = B * nh * T * T;
  return addCosts(
    linearCost(S, C, 3 * C, b),
    copy(3 * S * C, 2, b), // split into q, k, v; transpose each
    { flops: 0, batchedFlops: 2 * S * T * C, bytes: 0, kernels: 1 }, // Q K^T
    elementwise(scores, 2, b), // scale, mask
    elementwise(scores, 4, b), // softmax
    { flops: 0, batchedFlops: 2 * S * T * C, bytes: 0, kernels: 1 }, // att V
    copy(S * C, 1, b), // transpose back
    linearCost(S, C, C, b),
  );
}

/** Cross-entropy of `S` rows of `V` logits (`crossEntropy`: log-softmax, one-hot, mul, sum, mean). */
export function crossEntropyCost(S: number, V: number, b: number): StepCost {
  return elementwise(S * V, 8, b);
}
