/**
 * Picking the next token from logits: greedy, or temperature with nucleus
 * (top-p) truncation, drawing from a seeded generator so a run repeats.
 *
 * ```ts
 * import { sampleToken, seededUniform } from "./sample.ts";
 * const next = seededUniform(7);
 * const logits = new Float32Array([0.1, 2.0, -1.0]);
 * sampleToken(logits, { greedy: true }, next); // 1
 * sampleToken(logits, { temperature: 0.8, topP: 0.9 }, next);
 * ```
 *
 * @module
 */

/** How to choose a token. */
export interface SamplingOptions {
  /** Take the most likely token (ignores the rest). */
  greedy?: boolean;
  /** Divides the logits; lower is more conservative (default 1). */
  temperature?: number;
  /** Keep the smallest set of likeliest tokens whose probability reaches this (default 1: all). */
  topP?: number;
}

/** A uniform generator on [0, 1) from a 32-bit seed (mulberry32). */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/** The index of the chosen token. */
export function sampleToken(
  logits: Float32Array,
  options: SamplingOptions,
  uniform: () => number,
): number {
  const { greedy = false, temperature = 1, topP = 1 } = options;
  if (greedy || temperature <= 0) return logits.reduce((b, x, i) => x > logits[b] ? i : b, 0);
  const max = Math.max(...logits);
  const weights = Array.from(logits, (x) => Math.exp((x - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  const order = weights.map((_, i) => i).sort((i, j) => weights[j] - weights[i]);
  const kept: number[] = [];
  let mass = 0;
  for (const i of order) {
    kept.push(i);
    mass += weights[i];
    if (mass >= topP * total) break;
  }
  let u = uniform() * mass;
  for (const i of kept) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return kept[kept.length - 1];
}
