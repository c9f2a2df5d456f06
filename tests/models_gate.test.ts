import { deepEqual, equal, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../models/backend.ts";
import { auxLoss, combineRows, decideRoute, gateNoise, gateWeights } from "../models/gate.ts";

/** Scores [S, E] where token t prefers the experts in `prefs[t]`, best first. */
function scoresFor(prefs: number[][], E: number): Float32Array {
  const s = new Float32Array(prefs.length * E);
  prefs.forEach((p, t) => p.forEach((e, rank) => (s[t * E + e] = 10 - rank)));
  return s;
}

Deno.test("gate: capacity is k * ceil(CF * tokens / E) and later tokens drop first", () => {
  // 6 tokens, 2 experts, CF 1: capacity ceil(6 / 2) = 3 per expert.
  const r = decideRoute(scoresFor([[0], [0], [1], [0], [0], [0]], 2), {
    nExperts: 2,
    k: 1,
    capacityFactor: 1,
  });
  equal(r.capacity, 3);
  deepEqual([...r.choice], [0, 0, 1, 0, 0, 0]);
  // Expert 0 keeps tokens 0, 1, 3 (rows 0..2); tokens 4 and 5 drop; token 2 is expert 1's row 3.
  deepEqual([...r.row], [0, 1, 3, 2, -1, -1]);
  deepEqual([...r.rowToken], [0, 1, 3, 2]);
  deepEqual([...r.perExpert], [3, 1]);
});

Deno.test("gate: top-2 fills first choices before second choices", () => {
  // 4 tokens, 2 experts, CF 0.5: capacity 2 * ceil(0.5 * 4 / 2) = 2.
  const r = decideRoute(scoresFor([[0, 1], [0, 1], [0, 1], [1, 0]], 2), {
    nExperts: 2,
    k: 2,
    capacityFactor: 0.5,
  });
  equal(r.capacity, 2);
  // Expert 0: first choices of tokens 0, 1 kept, token 2 (first choice) dropped, token 3's second dropped.
  // Expert 1: token 3 (first choice) slot 0, then token 0's second choice slot 1; tokens 1, 2 drop.
  const kept = (t: number, j: number) => r.row[t * 2 + j] >= 0;
  deepEqual([0, 1, 2, 3].map((t) => [kept(t, 0), kept(t, 1)]), [
    [true, true],
    [true, false],
    [false, false],
    [true, false],
  ]);
  deepEqual([...r.rowToken], [0, 1, 3, 0]);
});

Deno.test("gate: capacity and the top-1 fraction are per group", () => {
  // 8 tokens in 2 groups; all prefer expert 1. CF 1, E 2: capacity ceil(4 / 2) = 2 per group.
  const r = decideRoute(scoresFor(Array.from({ length: 8 }, () => [1, 0]), 2), {
    nExperts: 2,
    k: 1,
    capacityFactor: 1,
    groups: 2,
  });
  equal(r.capacity, 2);
  deepEqual([...r.row].map((x) => x >= 0), [true, true, false, false, true, true, false, false]);
  deepEqual([...r.rowToken], [0, 1, 4, 5]); // by (expert, group, slot)
  deepEqual([...r.top1Fraction], [0, 1, 0, 1]);
});

Deno.test("gate: DGMoE takes the second-ranked expert when the preceding half picked the first", () => {
  const scores = scoresFor([[2, 0, 1], [1, 2, 0], [0, 1, 2]], 3);
  const r = decideRoute(scores, {
    nExperts: 3,
    k: 1,
    capacityFactor: 4,
    avoid: new Int32Array([2, 0, 1]),
  });
  deepEqual([...r.choice], [0, 1, 0]); // token 0 avoids 2, token 1 keeps 1, token 2 keeps 0
});

Deno.test("gate: ties go to the lower expert index", () => {
  const r = decideRoute(new Float32Array([1, 1, 1, 1]), { nExperts: 2, k: 2, capacityFactor: 4 });
  deepEqual([...r.choice], [0, 1, 0, 1]);
});

Deno.test("gate: noise of a token does not depend on how the batch is split", () => {
  const all = gateNoise(1, 5, "blocks.1.moe.gate", 0, 12, 4);
  const tail = gateNoise(1, 5, "blocks.1.moe.gate", 8, 4, 4);
  deepEqual([...tail], [...all.subarray(32)]);
  const other = gateNoise(1, 6, "blocks.1.moe.gate", 0, 12, 4);
  ok(other.some((x, i) => x !== all[i]), "another step draws other noise");
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  ok(Math.abs(mean) < 0.5);
});

Deno.test("gate: weights, aux loss and combine follow the equations", async () => {
  await setupBackend("cpu");
  // Two tokens, three experts, top-2.
  const h = tf.tensor2d([[2, 1, 0], [0, 0, 3]]);
  const r = decideRoute(h.dataSync() as Float32Array, { nExperts: 3, k: 2, capacityFactor: 0.5 });
  // capacity 2 * ceil(0.5 * 2 / 3) = 2: nothing drops.
  const w = gateWeights(h, r).arraySync() as number[][];
  const e = Math.exp(1);
  ok(Math.abs(w[0][0] - e / (e + 1)) < 1e-6 && Math.abs(w[0][1] - 1 / (e + 1)) < 1e-6);
  // Aux: E * sum_e mean_prob_e * fraction_top1_e, fraction = [1/2, 0, 1/2].
  const p = tf.softmax(h).arraySync() as number[][];
  const expected = 3 * (((p[0][0] + p[1][0]) / 2) * 0.5 + ((p[0][2] + p[1][2]) / 2) * 0.5);
  ok(Math.abs(auxLoss(h, r).dataSync()[0] - expected) < 1e-6);
  // Combine: token t gets sum_j w_tj * rows[row_tj]; row order is by expert.
  const rows = tf.tensor2d([[1, 0], [0, 1], [5, 5], [7, 7]]); // one per kept assignment
  const y = combineRows(rows, gateWeights(h, r), r).arraySync() as number[][];
  const yExpected = [0, 1].map((t) =>
    [0, 1].map((c) =>
      [0, 1].reduce(
        (s, j) => s + w[t][j] * (rows.arraySync() as number[][])[r.row[t * 2 + j]][c],
        0,
      )
    )
  );
  y.flat().forEach((v, i) => ok(Math.abs(v - yExpected.flat()[i]) < 1e-6));
  // A dropped assignment adds nothing.
  const dropped = decideRoute(new Float32Array([1, 0, 1, 0]), {
    nExperts: 2,
    k: 1,
    capacityFactor: 0.5,
  });
  deepEqual([...dropped.row], [0, -1]);
  const out = combineRows(tf.ones([1, 2]), tf.ones([2, 1]), dropped).arraySync();
  deepEqual(out, [[1, 1], [0, 0]]);
});
