/**
 * Parameters named by role (`blocks.3.moe.experts.5.w1`, with the global
 * expert index), their shapes and initial values, and which rank owns which
 * expert. Every value is a pure function of (seed, name), so any rank layout
 * starts from the same model and a checkpoint can re-shard experts (rank r of
 * N holds the contiguous experts `expertRange(r, N, E)` of `checkpoint.ts`).
 *
 * @module
 */

import { hashString, normals } from "./rng.ts";

/** How a parameter starts. */
export type Init = { kind: "normal"; std: number } | { kind: "zeros" } | { kind: "ones" };

/** Name, shape and initialiser of one parameter. */
export interface ParamSpec {
  /** Role name, e.g. `blocks.1.attn.wqkv`. */
  name: string;
  /** Tensor shape. */
  shape: number[];
  /** Initialiser. */
  init: Init;
  /** Global index of the expert this parameter belongs to, if any. */
  expert?: number;
  /** With `expert`: how many experts its MoE layer has (rank r of N holds `expertRange(r, N, experts)`). */
  experts?: number;
}

/** An expert parameter's place: expert `index` of its layer's `of`. */
export interface ExpertOf {
  /** Global expert index. */
  index: number;
  /** Experts of the layer. */
  of: number;
}

/** Builds a list of {@linkcode ParamSpec}s: layer norms, MLPs and single tensors. */
export class ParamList {
  /** The specs so far, in the order added. */
  readonly specs: ParamSpec[] = [];

  /** Adds one parameter. */
  add(name: string, shape: number[], init: Init, expert?: ExpertOf): this {
    this.specs.push(
      expert
        ? { name, shape, init, expert: expert.index, experts: expert.of }
        : { name, shape, init },
    );
    return this;
  }

  /** `${prefix}.g` (ones) and `${prefix}.b` (zeros) of a layer norm over `dim`. */
  layerNorm(prefix: string, dim: number): this {
    return this.add(`${prefix}.g`, [dim], ONES).add(`${prefix}.b`, [dim], ZEROS);
  }

  /**
   * `${prefix}.w1` [dim, hidden], `.b1`, `.w2` [hidden, dim], `.b2` of an MLP
   * (`ffn` of `layers.ts`); `w2` projects into the residual stream with `residStd`.
   */
  ffn(
    prefix: string,
    dim: number,
    hidden: number,
    std: number,
    residStd: number,
    expert?: ExpertOf,
  ): this {
    return this.add(`${prefix}.w1`, [dim, hidden], normal(std), expert)
      .add(`${prefix}.b1`, [hidden], ZEROS, expert)
      .add(`${prefix}.w2`, [hidden, dim], normal(residStd), expert)
      .add(`${prefix}.b2`, [dim], ZEROS, expert);
  }
}

/** A normal initialiser of standard deviation `std`. */
export function normal(std: number): Init {
  return { kind: "normal", std };
}

/** The zeros initialiser. */
export const ZEROS: Init = { kind: "zeros" };
/** The ones initialiser. */
export const ONES: Init = { kind: "ones" };

/**
 * The initial values of one parameter: a function of (seed, name) only.
 *
 * @example
 * ```ts
 * import { initialValues } from "./params.ts";
 * initialValues({ name: "wte", shape: [256, 64], init: { kind: "normal", std: 0.02 } }, 0).length; // 256 * 64
 * ```
 */
export function initialValues(spec: ParamSpec, seed: number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  switch (spec.init.kind) {
    case "zeros":
      return new Float32Array(n);
    case "ones":
      return new Float32Array(n).fill(1);
    case "normal": {
      const v = normals(seed, hashString(spec.name), n);
      for (let i = 0; i < n; i++) v[i] *= spec.init.std;
      return v;
    }
  }
}
