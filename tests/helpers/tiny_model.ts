/**
 * The tiny model configuration and the variant cases the model tests share.
 *
 * @module
 */
import type { ModelConfig } from "../../models/config.ts";

/** A model small enough for many runs per test: 4 blocks, 4 experts, width 16. */
export const TINY_MODEL: Partial<ModelConfig> = {
  vocabSize: 32,
  blockSize: 8,
  nLayer: 4,
  nHead: 2,
  nEmbd: 16,
  hidden: 32,
  nExperts: 4,
};

/** Every variant of the paper (and each combiner), by test name. */
export const VARIANT_CASES: [string, Partial<ModelConfig>][] = [
  ["dense", { variant: "dense" }],
  ["top1", { variant: "top1" }],
  ["top2", { variant: "top2" }],
  ["se", { variant: "se" }],
  ["dgmoe", { variant: "dgmoe" }],
  ["scmoe-pos1", { variant: "scmoe", pos: 1 }],
  ["scmoe-pos2", { variant: "scmoe", pos: 2 }],
  ["scmoe-pos3", { variant: "scmoe", pos: 3 }],
  ["scmoe-pos2-add", { variant: "scmoe", pos: 2, combiner: "add" }],
  ["scmoe-pos2-cg2", { variant: "scmoe", pos: 2, combiner: "cg2" }],
  ["scmoe-every-block", { variant: "scmoe", moeEvery: 1 }],
];
