/**
 * The one configuration object of the GPT (`gpt.ts`), its defaults, and
 * which of its blocks hold an MoE layer.
 *
 * @module
 */

import { AUX_CONVENTIONS, type AuxConvention } from "./steps.ts";

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
  /** Hidden width of the dense MLP, of the shared expert and (by default) of each expert (4 * nEmbd). */
  hidden: number;
  /** Hidden width of each routed expert (`hidden`). */
  expertHidden: number;
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
  /**
   * How the MoE layers' balancing losses are combined ("sum": each layer
   * weighted `auxLossWeight`, the paper's reading; "mean": their mean
   * weighted once). See `AuxConvention` of `steps.ts`.
   */
  auxConvention: AuxConvention;
  /**
   * MoE blocks that share one gate and expert set (DGMoE-Share, the paper's
   * suggested extension; 1: every MoE block has its own). Blocks
   * `moeEvery-1`, `2*moeEvery-1`, ... are grouped in order, `moeShare` to a
   * module; each block keeps its own layer norms (and, for SE and ScMoE,
   * shared expert and combiner).
   */
  moeShare: number;
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
  const hidden = partial.hidden ?? 4 * nEmbd;
  const cfg: ModelConfig = {
    vocabSize: 256,
    blockSize: 64,
    nLayer: 4,
    nHead: 4,
    hidden,
    expertHidden: hidden,
    variant: "scmoe",
    pos: moeEvery === 1 ? 1 : 2,
    combiner: "cg1",
    nExperts: 4,
    capacityFactor: 2.0,
    evalCapacityFactor: 2.0,
    auxLossWeight: 0.01,
    auxConvention: "sum",
    moeShare: 1,
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
  if (!AUX_CONVENTIONS.includes(cfg.auxConvention)) {
    fail(`auxConvention must be sum or mean, not "${cfg.auxConvention}"`);
  }
  if (!(Number.isInteger(cfg.moeShare) && cfg.moeShare >= 1)) {
    fail(`moeShare must be a positive integer, not ${cfg.moeShare}`);
  }
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
