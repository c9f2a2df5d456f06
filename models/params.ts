/**
 * Parameters named by role (`blocks.3.moe.experts.5.w1`, with the global
 * expert index), their shapes and initial values, and which rank owns which
 * expert. Every value is a pure function of (seed, name), so any rank layout
 * starts from the same model and a checkpoint can re-shard experts (rank r of
 * N holds the contiguous experts `expertRange(r, N, E)` of `checkpoint.ts`).
 *
 * @module
 */

import { hasSharedExpert, isMoeBlock, type ModelConfig } from "./config.ts";
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
}

/** Every parameter of the full model (all experts), in a fixed order. */
export function paramSpecs(cfg: ModelConfig): ParamSpec[] {
  const C = cfg.nEmbd, Hd = cfg.hidden;
  const std = 0.02;
  // GPT-2: projections into the residual stream are scaled by 1/sqrt(2 * nLayer).
  const resid = std / Math.sqrt(2 * cfg.nLayer);
  const specs: ParamSpec[] = [];
  const add = (name: string, shape: number[], init: Init, expert?: number) =>
    specs.push({ name, shape, init, expert });
  const normal = (s: number): Init => ({ kind: "normal", std: s });
  const zeros: Init = { kind: "zeros" }, ones: Init = { kind: "ones" };
  const layerNorm = (p: string) => {
    add(`${p}.g`, [C], ones);
    add(`${p}.b`, [C], zeros);
  };
  const ffn = (p: string, expert?: number) => {
    add(`${p}.w1`, [C, Hd], normal(std), expert);
    add(`${p}.b1`, [Hd], zeros, expert);
    add(`${p}.w2`, [Hd, C], normal(resid), expert);
    add(`${p}.b2`, [C], zeros, expert);
  };

  add("wte", [cfg.vocabSize, C], normal(std));
  add("wpe", [cfg.blockSize, C], normal(std));
  for (let i = 0; i < cfg.nLayer; i++) {
    const b = `blocks.${i}`;
    layerNorm(`${b}.ln1`);
    add(`${b}.attn.wqkv`, [C, 3 * C], normal(std));
    add(`${b}.attn.bqkv`, [3 * C], zeros);
    add(`${b}.attn.wo`, [C, C], normal(resid));
    add(`${b}.attn.bo`, [C], zeros);
    layerNorm(`${b}.ln2`);
    if (!isMoeBlock(cfg, i)) {
      ffn(`${b}.mlp`);
      continue;
    }
    const m = `${b}.moe`;
    add(`${m}.gate.wg`, [C, cfg.nExperts], normal(std));
    add(`${m}.gate.wn`, [C, cfg.nExperts], zeros);
    if (cfg.variant === "scmoe" || cfg.variant === "dgmoe") layerNorm(`${m}.ln_tap`);
    if (hasSharedExpert(cfg)) ffn(`${m}.shared`);
    if (cfg.variant === "scmoe" && cfg.combiner !== "add") {
      add(`${m}.cg.w`, [C, cfg.combiner === "cg1" ? 1 : 2], zeros);
    }
    for (let e = 0; e < cfg.nExperts; e++) ffn(`${m}.experts.${e}`, e);
  }
  layerNorm("lnf");
  return specs;
}

/**
 * The initial values of one parameter: a function of (seed, name) only.
 *
 * @example
 * ```ts
 * import { initialValues, paramSpecs } from "./params.ts";
 * import { resolveConfig } from "./config.ts";
 * const [wte] = paramSpecs(resolveConfig());
 * initialValues(wte, 0).length; // 256 * 64
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
