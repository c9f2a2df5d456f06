/**
 * The one configuration object of the model, its defaults, and the layout it
 * implies: which blocks hold an MoE layer and which representation each MoE
 * layer's routed experts read (its "tap").
 *
 * @module
 */

/**
 * The MoE block variants of the ScMoE paper (Cai et al., "Shortcut-connected
 * Expert Parallelism for Accelerating Mixture-of-Experts", arXiv:2404.05019).
 */
export type Variant = "dense" | "top1" | "top2" | "se" | "dgmoe" | "scmoe";

/** The variant names, for CLI validation. */
export const VARIANTS: readonly Variant[] = ["dense", "top1", "top2", "se", "dgmoe", "scmoe"];

/** How ScMoE combines the shared expert with the routed experts. */
export type Combiner = "cg1" | "add" | "cg2";

/** Model configuration; every field has a default (see {@linkcode resolveConfig}). */
export interface ModelConfig {
  /** Vocabulary size (256: byte-level tokens). */
  vocabSize: number;
  /** Longest context, the size of the position embedding (64). */
  blockSize: number;
  /** Number of transformer blocks (4). */
  nLayer: number;
  /** Attention heads per block (4). */
  nHead: number;
  /** Model width C (64). */
  nEmbd: number;
  /** Hidden width of the dense MLP, of each expert and of the shared expert (4 * nEmbd). */
  hidden: number;
  /** The MoE block variant ("scmoe"). */
  variant: Variant;
  /** ScMoE tap: 1 = M_l, 2 = A_l, 3 = H_{l-1} (2; 1 when every block is MoE). */
  pos: 1 | 2 | 3;
  /** ScMoE combiner of the shared and routed terms ("cg1"). */
  combiner: Combiner;
  /** Experts per MoE layer, E (4). */
  nExperts: number;
  /** Every `moeEvery`-th block is an MoE block: blocks moeEvery-1, 2*moeEvery-1, ... (2). */
  moeEvery: number;
  /** Capacity factor CF in training (2.0). */
  capacityFactor: number;
  /** Capacity factor CF in evaluation and generation (2.0). */
  evalCapacityFactor: number;
  /** Weight of the load-balancing loss (0.01). */
  auxLossWeight: number;
  /** Gate noise `eps * softplus(x Wn)` in training (true). */
  gateNoise: boolean;
}

/**
 * Fills the defaults and validates.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * const cfg = resolveConfig({ variant: "top2", nExperts: 8 });
 * cfg.hidden; // 256
 * ```
 */
export function resolveConfig(partial: Partial<ModelConfig> = {}): ModelConfig {
  const nEmbd = partial.nEmbd ?? 64;
  const moeEvery = partial.moeEvery ?? 2;
  const cfg: ModelConfig = {
    vocabSize: 256,
    blockSize: 64,
    nLayer: 4,
    nHead: 4,
    hidden: 4 * nEmbd,
    variant: "scmoe",
    pos: moeEvery === 1 ? 1 : 2,
    combiner: "cg1",
    nExperts: 4,
    capacityFactor: 2.0,
    evalCapacityFactor: 2.0,
    auxLossWeight: 0.01,
    gateNoise: true,
    ...partial,
    nEmbd,
    moeEvery,
  };
  const fail = (msg: string) => {
    throw new RangeError(`model config: ${msg}`);
  };
  if (!VARIANTS.includes(cfg.variant)) fail(`unknown variant "${cfg.variant}"`);
  if (cfg.nEmbd % cfg.nHead !== 0) fail(`nEmbd ${cfg.nEmbd} must divide by nHead ${cfg.nHead}`);
  if (![1, 2, 3].includes(cfg.pos)) fail(`pos must be 1, 2 or 3, not ${cfg.pos}`);
  if (!["cg1", "add", "cg2"].includes(cfg.combiner)) fail(`unknown combiner "${cfg.combiner}"`);
  if (cfg.variant !== "dense") {
    if (moeEvery < 1 || moeEvery > cfg.nLayer) fail(`moeEvery must be in 1..nLayer`);
    if (cfg.nExperts < 2) fail(`an MoE layer needs at least 2 experts`);
    if (cfg.variant === "scmoe" && moeEvery === 1 && cfg.pos !== 1) {
      fail("with MoE in every block ScMoE uses Pos-1");
    }
    if (cfg.variant === "dgmoe" && moeEvery === 1) {
      fail("dgmoe needs a dense block before each MoE block");
    }
  }
  return cfg;
}

/** Whether block `i` holds an MoE layer. */
export function isMoeBlock(cfg: ModelConfig, i: number): boolean {
  return cfg.variant !== "dense" && (i + 1) % cfg.moeEvery === 0;
}

/** Routed choices per token: 2 for top-2, 1 for every other variant. */
export function topK(cfg: ModelConfig): number {
  return cfg.variant === "top2" ? 2 : 1;
}

/** The value names of the backbone: block i reads `h{i-1}` ("h-1" is the embedding), makes `a{i}` after attention and `h{i}`. */
export const valueNames = {
  /** Input of block i (H_{i-1}). */
  input: (i: number) => `h${i - 1}`,
  /** After attention of block i (A_i). */
  attn: (i: number) => `a${i}`,
  /** Output of block i (H_i). */
  output: (i: number) => `h${i}`,
};

/**
 * The representation the routed experts of MoE block `i` read, as a value name:
 * the current `A_i` for top-1/top-2/SE; for ScMoE Pos-1 `M_{i-1}` (the input of
 * block i), Pos-2 `A_{i-1}`, Pos-3 `H_{i-2}` (the input of block i-1). DGMoE has
 * two: `A_{i-1}` (preceding) and `A_i` (current), see {@linkcode gateTaps}.
 */
export function gateTaps(cfg: ModelConfig, i: number): { tap: string; preceding: boolean }[] {
  switch (cfg.variant) {
    case "scmoe": {
      const tap = cfg.pos === 1
        ? valueNames.input(i)
        : cfg.pos === 2
        ? valueNames.attn(i - 1)
        : valueNames.input(i - 1);
      return [{ tap, preceding: true }];
    }
    case "dgmoe":
      return [
        { tap: valueNames.attn(i - 1), preceding: true },
        { tap: valueNames.attn(i), preceding: false },
      ];
    default:
      return [{ tap: valueNames.attn(i), preceding: false }];
  }
}

/** Whether the variant has a shared expert (SE and ScMoE). */
export function hasSharedExpert(cfg: ModelConfig): boolean {
  return cfg.variant === "se" || cfg.variant === "scmoe";
}
