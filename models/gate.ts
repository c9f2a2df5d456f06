/**
 * The noisy top-k gate. Routing decisions (top-k indices, capacity slots,
 * dropped tokens) are made off the tape in plain JavaScript by
 * {@linkcode decideRoute}; gradients reach the gate through the kept logits,
 * which the on-tape helpers gather by those decisions.
 *
 * The gate of the ScMoE paper (arXiv:2404.05019), noisy top-k softmax:
 * `h = x Wg + eps * softplus(x Wn)` (eps ~ N(0, 1), training
 * only); keep the top-k logits and softmax over them; capacity per expert
 * `k * ceil(CF * tokens / E)`; tokens past capacity are dropped (residual only);
 * load-balancing loss `E * sum_e mean_prob_e * fraction_top1_e`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { linear, type ParamLookup } from "./layers.ts";
import { hashString, normals } from "./rng.ts";

/** Options of {@linkcode decideRoute}. */
export interface RouteOptions {
  /** Number of experts E. */
  nExperts: number;
  /** Choices per token (1 or 2). */
  k: number;
  /** Capacity factor CF. */
  capacityFactor: number;
  /**
   * Tokens are split into this many equal, consecutive groups; capacity and
   * the aux loss are per group (one group per rank's micro-batch). Default 1.
   */
  groups?: number;
  /**
   * DGMoE's rule, per token: the expert its preceding representation picked.
   * A token whose first choice equals it takes its second-ranked expert.
   */
  avoid?: Int32Array;
}

/** The routing decisions of one gate application over S tokens. */
export interface Route {
  /** Tokens S. */
  nTokens: number;
  /** Choices per token. */
  k: number;
  /** Number of experts E. */
  nExperts: number;
  /** Groups the tokens were split into. */
  groups: number;
  /** Slots per expert and group: `k * ceil(CF * S / groups / E)`. */
  capacity: number;
  /** [S * k] the expert of choice j of token t at `t * k + j`. */
  choice: Int32Array;
  /** [S * k] the row of that assignment in the dispatch buffer, or -1 when dropped. */
  row: Int32Array;
  /** [rows] the token of each dispatch row; rows are sorted by (expert, group, slot). */
  rowToken: Int32Array;
  /** [E] dispatch rows per expert (its load). */
  perExpert: Int32Array;
  /** [groups * E] fraction of each group's tokens whose first choice is e. */
  top1Fraction: Float32Array;
}

/**
 * Decides top-k choices and capacity slots from gate logits `scores` [S, E].
 * Within each group, first choices take slots before second choices, and
 * tokens in order of position; an assignment past capacity is dropped.
 *
 * @example
 * ```ts
 * import { decideRoute } from "./gate.ts";
 * // 3 tokens, 2 experts, all prefer expert 0; capacity ceil(1.0 * 3 / 2) = 2
 * const r = decideRoute(new Float32Array([1, 0, 1, 0, 1, 0]), {
 *   nExperts: 2, k: 1, capacityFactor: 1,
 * });
 * r.row; // Int32Array [0, 1, -1]: the third token is dropped
 * ```
 */
export function decideRoute(scores: Float32Array, opts: RouteOptions): Route {
  const { nExperts: E, k, capacityFactor, avoid } = opts;
  const groups = opts.groups ?? 1;
  const S = scores.length / E;
  if (!Number.isInteger(S) || S % groups !== 0) {
    throw new RangeError(`${S} tokens do not split into ${groups} groups`);
  }
  const perGroup = S / groups;
  const capacity = k * Math.ceil((capacityFactor * perGroup) / E);

  // Choices: experts ranked by logit (ties to the lower index), DGMoE rule applied.
  const choice = new Int32Array(S * k);
  const ranked = Array.from({ length: E }, (_, e) => e);
  for (let t = 0; t < S; t++) {
    ranked.sort((a, b) => scores[t * E + b] - scores[t * E + a] || a - b);
    const skip = avoid && ranked[0] === avoid[t] ? 1 : 0;
    for (let j = 0; j < k; j++) choice[t * k + j] = ranked[j + skip];
  }

  // Capacity slots per (group, expert): first choices before second choices.
  const slot = new Int32Array(S * k);
  const kept = new Int32Array(groups * E); // [G, E]
  const top1Fraction = new Float32Array(groups * E);
  for (let g = 0; g < groups; g++) {
    for (let j = 0; j < k; j++) {
      for (let t = g * perGroup; t < (g + 1) * perGroup; t++) {
        const e = choice[t * k + j];
        if (j === 0) top1Fraction[g * E + e] += 1 / perGroup;
        slot[t * k + j] = kept[g * E + e] < capacity ? kept[g * E + e]++ : -1;
      }
    }
  }

  // Dispatch rows sorted by (expert, group, slot).
  const perExpert = new Int32Array(E);
  const base = new Int32Array(groups * E); // first row of (g, e)
  let rows = 0;
  for (let e = 0; e < E; e++) {
    for (let g = 0; g < groups; g++) {
      base[g * E + e] = rows;
      rows += kept[g * E + e];
      perExpert[e] += kept[g * E + e];
    }
  }
  const row = new Int32Array(S * k).fill(-1);
  const rowToken = new Int32Array(rows);
  for (let t = 0; t < S; t++) {
    const g = Math.floor(t / perGroup);
    for (let j = 0; j < k; j++) {
      const a = t * k + j;
      if (slot[a] < 0) continue;
      row[a] = base[g * E + choice[a]] + slot[a];
      rowToken[row[a]] = t;
    }
  }
  return {
    nTokens: S,
    k,
    nExperts: E,
    groups,
    capacity,
    choice,
    row,
    rowToken,
    perExpert,
    top1Fraction,
  };
}

/**
 * The gate noise eps [S, E] of one gate application at one step, for the S
 * tokens starting at global token index `tokenOffset`: the same values however
 * the global batch is split across ranks.
 */
export function gateNoise(
  seed: number,
  step: number,
  gate: string,
  tokenOffset: number,
  nTokens: number,
  nExperts: number,
): Float32Array {
  return normals(seed, hashString(`${gate}@${step}`), nTokens * nExperts, tokenOffset * nExperts);
}

/** Gate logits `h = x Wg + eps * softplus(x Wn)` of `x` [S, C] (no noise when `eps` is null): [S, E]. */
export function gateLogits(
  x: tf.Tensor,
  p: ParamLookup,
  prefix: string,
  eps: Float32Array | null,
): tf.Tensor {
  const clean = linear(x, p(`${prefix}.wg`)); // [S, E]
  if (!eps) return clean;
  const scale = tf.softplus(linear(x, p(`${prefix}.wn`))); // [S, E]
  return tf.add(clean, tf.mul(tf.tensor(eps, clean.shape), scale));
}

/**
 * Gate values G [S, k] from logits `h` [S, E]: the chosen experts'
 * probabilities under a softmax over all experts, renormalised over the kept
 * k when k > 1. For top-2 this equals a softmax over the two kept logits (the
 * paper's wording); for top-1 it is the chosen probability itself, as in
 * Switch and Tutel, so the gate also learns from the language-model loss (a
 * softmax over one kept logit would be the constant 1).
 */
export function gateWeights(h: tf.Tensor, route: Route): tf.Tensor {
  const { nTokens: S, k, nExperts: E, choice } = route;
  const idx = new Int32Array(S * k);
  for (let a = 0; a < S * k; a++) idx[a] = Math.floor(a / k) * E + choice[a];
  const probs = tf.reshape(tf.softmax(h, -1), [-1]); // [S * E]
  const kept = tf.reshape(tf.gather(probs, tf.tensor1d(idx, "int32")), [S, k]); // [S, k]
  return k === 1 ? kept : tf.div(kept, tf.sum(kept, -1, true));
}

/** GShard load-balancing loss of logits `h` [S, E], averaged over groups: `E * sum_e mean_prob_e * fraction_top1_e`. */
export function auxLoss(h: tf.Tensor, route: Route): tf.Scalar {
  const { nTokens: S, nExperts: E, groups } = route;
  const probs = tf.reshape(tf.softmax(h, -1), [groups, S / groups, E]);
  const meanProb = tf.mean(probs, 1); // [G, E]
  const frac = tf.tensor2d(route.top1Fraction, [groups, E]);
  return tf.mul(E / groups, tf.sum(tf.mul(meanProb, frac)));
}

/**
 * `sum_j G_j * E_{choice_j}(x)` per token, from the expert outputs of the
 * dispatch rows `rows` [R, C] and the gate values `w` [S, k]: [S, C].
 * A dropped assignment contributes zero.
 */
export function combineRows(rows: tf.Tensor, w: tf.Tensor, route: Route): tf.Tensor {
  const { nTokens: S, k, row } = route;
  const R = rows.shape[0];
  const padded = tf.concat([rows, tf.zeros([1, rows.shape[1] as number])]); // [R + 1, C]; row R is zero
  const terms: tf.Tensor[] = [];
  for (let j = 0; j < k; j++) {
    const idx = new Int32Array(S);
    for (let t = 0; t < S; t++) idx[t] = row[t * k + j] < 0 ? R : row[t * k + j];
    const wj = tf.slice(w, [0, j], [S, 1]); // [S, 1]
    terms.push(tf.mul(tf.gather(padded, tf.tensor1d(idx, "int32")), wj)); // [S, C]
  }
  return terms.length === 1 ? terms[0] : tf.addN(terms);
}

/** Per-gate statistics of one step. */
export interface GateStats {
  /** The gate application, e.g. `blocks.1.moe.gate` or `blocks.1.moe.gate.preceding`. */
  name: string;
  /** Kept assignments per expert (at most its capacity). */
  load: number[];
  /** Assignments that chose each expert, kept or dropped: what the router asked of it. */
  demand: number[];
  /** Assignments dropped past capacity. */
  dropped: number;
  /** All assignments (tokens * k). */
  assignments: number;
}

/** The statistics of one route. */
export function routeStats(name: string, route: Route): GateStats {
  const assignments = route.nTokens * route.k;
  const demand = new Array<number>(route.nExperts).fill(0);
  for (const e of route.choice) demand[e]++;
  return {
    name,
    load: Array.from(route.perExpert),
    demand,
    dropped: assignments - route.rowToken.length,
    assignments,
  };
}
