/**
 * AdamW with decoupled weight decay, global-norm gradient clipping that works
 * across expert-parallel ranks, and a warm-up + cosine learning-rate schedule.
 *
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { AdamW, clipScale, localGradSquares, warmupCosine } from "./optimizer.ts";
 *
 * const params = new Map([["blocks.0.mlp.w1", tf.variable(tf.randomNormal([4, 8]))]]);
 * const opt = new AdamW(params, { lr: warmupCosine({ peak: 3e-3, warmup: 10, total: 300 }) });
 * const grads = new Map([["blocks.0.mlp.w1", tf.onesLike(params.get("blocks.0.mlp.w1")!)]]);
 * // With N ranks: all-reduce `expert` (sum) first; `dense` is already identical on every rank.
 * const { dense, expert } = localGradSquares(grads);
 * opt.update(grads, clipScale(Math.sqrt(dense + expert), 1.0));
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Tensor, Variable } from "./tf.ts";
import { expertIndex, type HostTensor } from "./checkpoint.ts";

/** A learning rate for a 0-based optimizer step. */
export type Schedule = (step: number) => number;

/** Options of {@linkcode warmupCosine}. */
export interface WarmupCosineOptions {
  /** Learning rate reached at the end of warm-up. */
  peak: number;
  /** Steps of linear warm-up; step s < warmup gets `peak * (s + 1) / warmup`. */
  warmup: number;
  /** Total steps; the cosine reaches `min` at step `total` and stays there. */
  total: number;
  /** Final learning rate (default `peak / 10`). */
  min?: number;
}

/**
 * Linear warm-up to `peak`, then cosine decay to `min` at step `total`:
 * `min + (peak - min) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2`.
 */
export function warmupCosine(options: WarmupCosineOptions): Schedule {
  const { peak, warmup, total, min = peak / 10 } = options;
  if (!(warmup >= 0 && total > warmup)) {
    throw new RangeError(`need 0 <= warmup < total, got warmup ${warmup}, total ${total}`);
  }
  return (step) => {
    if (step < warmup) return (peak * (step + 1)) / warmup;
    const progress = Math.min(1, (step - warmup) / (total - warmup));
    return min + ((peak - min) * (1 + Math.cos(Math.PI * progress))) / 2;
  };
}

const NO_DECAY_SEGMENT = /norm|^ln(\d*|f|_\w+)$|emb|^wte$|^wpe$/i;

/**
 * The default weight-decay rule, by role: the weight matrices of linear maps
 * (attention projections, MLPs, experts, gates) decay; biases and norm gains
 * or shifts (vectors) do not, nor does any tensor whose name has a norm
 * segment (`ln1`, `lnf`, `ln_tap`, `norm`, …) or an embedding segment (`wte`, `wpe`,
 * `tok_emb`, `embedding`, …; the output layer is tied to the token embedding).
 */
export function decaysWeight(name: string, shape: readonly number[]): boolean {
  return shape.length >= 2 && !name.split(".").some((s) => NO_DECAY_SEGMENT.test(s));
}

/** Sums of squared gradient elements on one rank, split by how they are held. */
export interface GradSquares {
  /** Over dense (replicated) gradients: identical on every rank after their all-reduce; count once. */
  dense: number;
  /** Over this rank's expert gradients: sum it across ranks. */
  expert: number;
}

/**
 * This rank's share of the squared global gradient norm. Experts are told
 * apart by name ({@linkcode expertIndex}). The global norm is
 * `sqrt(dense + sum over ranks of expert)`. Summed in float64.
 */
export function localGradSquares(grads: ReadonlyMap<string, Tensor>): GradSquares {
  const sums: GradSquares = { dense: 0, expert: 0 };
  for (const [name, grad] of grads) {
    let s = 0;
    for (const x of grad.dataSync()) s += x * x;
    sums[expertIndex(name) === null ? "dense" : "expert"] += s;
  }
  return sums;
}

/** Factor that scales gradients of norm `norm` down to at most `maxNorm` (1 when under). */
export function clipScale(norm: number, maxNorm: number): number {
  return norm > maxNorm ? maxNorm / norm : 1;
}

/** Options of {@linkcode AdamW}. */
export interface AdamWOptions {
  /** Learning rate, constant or per step. */
  lr: number | Schedule;
  /** Decay of the first moment (default 0.9). */
  beta1?: number;
  /** Decay of the second moment (default 0.95). */
  beta2?: number;
  /** Added to the root of the second moment (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay coefficient (default 0.1). */
  weightDecay?: number;
  /** Which parameters decay (default {@linkcode decaysWeight}). */
  decay?: (name: string, shape: readonly number[]) => boolean;
}

/** Optimizer state as host tensors: moments named `<param>.adam_m` and `<param>.adam_v`. */
export interface OptimizerState {
  /** Number of updates taken. */
  step: number;
  /** The first and second moments of every parameter. */
  tensors: Map<string, HostTensor>;
}

/**
 * AdamW (Loshchilov & Hutter): per step t (1-based), with gradient g,
 * `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g²`,
 * `p = p (1 - lr wd) - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`,
 * the decay term only for parameters the decay rule selects.
 */
export class AdamW {
  readonly #params: ReadonlyMap<string, tf.Variable>;
  readonly #lr: Schedule;
  readonly #beta1: number;
  readonly #beta2: number;
  readonly #eps: number;
  readonly #decayed: Set<string>;
  readonly #weightDecay: number;
  #m = new Map<string, tf.Variable>();
  #v = new Map<string, tf.Variable>();
  #step = 0;

  /** Starts with zero moments for every parameter in `params`. */
  constructor(params: ReadonlyMap<string, Variable>, options: AdamWOptions) {
    const { lr, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weightDecay = 0.1 } = options;
    const decay = options.decay ?? decaysWeight;
    this.#params = params;
    this.#lr = typeof lr === "number" ? () => lr : lr;
    this.#beta1 = beta1;
    this.#beta2 = beta2;
    this.#eps = eps;
    this.#weightDecay = weightDecay;
    this.#decayed = new Set([...params].filter(([n, p]) => decay(n, p.shape)).map(([n]) => n));
    for (const [name, p] of params) {
      this.#m.set(name, tf.variable(tf.zerosLike(p), false));
      this.#v.set(name, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** Number of updates taken so far. */
  get step(): number {
    return this.#step;
  }

  /** Names of the parameters weight decay applies to. */
  get decayed(): ReadonlySet<string> {
    return this.#decayed;
  }

  /**
   * Applies one update from `grads` (one per parameter, same names and shapes),
   * each multiplied by `scale` first (see {@linkcode clipScale}).
   *
   * @returns the learning rate used.
   */
  update(grads: ReadonlyMap<string, Tensor>, scale = 1): number {
    for (const name of grads.keys()) {
      if (!this.#params.has(name)) throw new Error(`gradient for unknown parameter ${name}`);
    }
    const lr = this.#lr(this.#step);
    const t = this.#step + 1;
    const b1 = this.#beta1;
    const b2 = this.#beta2;
    const stepSize = lr / (1 - b1 ** t);
    const rootCorrection = Math.sqrt(1 - b2 ** t);
    for (const [name, p] of this.#params) {
      const grad = grads.get(name);
      if (grad === undefined) throw new Error(`no gradient for parameter ${name}`);
      if (!tf.util.arraysEqual(grad.shape, p.shape)) {
        throw new Error(`gradient of ${name} has shape [${grad.shape}], parameter [${p.shape}]`);
      }
      const m = this.#m.get(name)!;
      const v = this.#v.get(name)!;
      tf.tidy(() => {
        const g = scale === 1 ? grad : tf.mul(grad, scale);
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        const denom = tf.add(tf.div(tf.sqrt(v), rootCorrection), this.#eps);
        const decayed = this.#decayed.has(name) ? tf.mul(p, 1 - lr * this.#weightDecay) : p;
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize)));
      });
    }
    this.#step = t;
    return lr;
  }

  /** Copies the step count and moments out, for a checkpoint. */
  exportState(): OptimizerState {
    const tensors = new Map<string, HostTensor>();
    for (const [name, p] of this.#params) {
      tensors.set(`${name}.adam_m`, { shape: [...p.shape], data: this.#m.get(name)!.dataSync() });
      tensors.set(`${name}.adam_v`, { shape: [...p.shape], data: this.#v.get(name)!.dataSync() });
    }
    return { step: this.#step, tensors };
  }

  /**
   * Restores the step count and moments of exactly this optimizer's
   * parameters (select a re-sharded rank's names first).
   *
   * @throws {Error} naming the first missing, unexpected or misshapen moment.
   */
  importState(state: OptimizerState): void {
    const expected = new Set<string>();
    for (const [name, p] of this.#params) {
      for (const kind of ["adam_m", "adam_v"]) {
        const key = `${name}.${kind}`;
        expected.add(key);
        const t = state.tensors.get(key);
        if (t === undefined) throw new Error(`optimizer state lacks ${key}`);
        if (!tf.util.arraysEqual(t.shape, p.shape) || !(t.data instanceof Float32Array)) {
          throw new Error(`optimizer state ${key} is not float32 [${p.shape}]`);
        }
      }
    }
    for (const key of state.tensors.keys()) {
      if (!expected.has(key)) throw new Error(`optimizer state has unexpected ${key}`);
    }
    tf.tidy(() => {
      for (const name of this.#params.keys()) {
        this.#m.get(name)!.assign(hostToTensor(state.tensors.get(`${name}.adam_m`)!));
        this.#v.get(name)!.assign(hostToTensor(state.tensors.get(`${name}.adam_v`)!));
      }
    });
    this.#step = state.step;
  }

  /** Frees the moment tensors. */
  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
  }
}

function hostToTensor(t: HostTensor): tf.Tensor {
  return tf.tensor(t.data as Float32Array, t.shape, "float32");
}
