/**
 * Held-out Brown genres: whole categories kept out of training and
 * validation, served as their own text; the validation split fixed by its
 * own seed, whatever the run's seed.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  BROWN_CATEGORIES,
  brownCategory,
  brownData,
  encodeDocuments,
  loadBrown,
  splitByDocument,
} from "../models/data.ts";
import { DataError, openData } from "../training/data_source.ts";

Deno.test("held-out categories: none of their documents is trained or validated on", async () => {
  const docs = await loadBrown();
  equal(Object.keys(BROWN_CATEGORIES).length, 15);
  deepEqual(
    [...new Set(docs.map((d) => brownCategory(d.id)))].sort(),
    Object.keys(BROWN_CATEGORIES).sort(),
  );
  const held = docs.filter((d) => ["h", "r"].includes(brownCategory(d.id)));
  equal(held.length, 30 + 9); // the corpus's 30 government documents and 9 humor pieces
  const seq = 64;
  const data = await brownData({ seed: 3, seq, heldoutCategories: ["h", "r"], splitSeed: 1 });
  // The held-out sampler holds exactly those documents, in corpus order.
  const heldTokens = encodeDocuments(held);
  equal(data.heldout!.numWindows, Math.floor((heldTokens.length - 1) / seq));
  const first = data.heldout!.batch(0, { batch: 2 });
  deepEqual([...first.tokens.subarray(0, seq + 1)], [...heldTokens.subarray(0, seq + 1)]);
  // Train and validation are the split of the other documents, by the split seed.
  const kept = docs.filter((d) => !["h", "r"].includes(brownCategory(d.id)));
  const split = splitByDocument(kept, { seed: 1 });
  equal(data.train.numWindows, Math.floor((encodeDocuments(split.train).length - 1) / seq));
  equal(data.val.numWindows, Math.floor((encodeDocuments(split.val).length - 1) / seq));
  ok(!split.val.some((d) => ["h", "r"].includes(brownCategory(d.id))));
  // Without held-out categories nothing changes: the split is by the run's seed over all 500.
  const plain = await brownData({ seed: 3, seq });
  equal(plain.heldout, undefined);
  equal(
    plain.val.numWindows,
    Math.floor((encodeDocuments(splitByDocument(docs, { seed: 3 }).val).length - 1) / seq),
  );
});

Deno.test("split seed: the validation split is the same for every run seed", async () => {
  const spec = { kind: "brown" as const, heldoutCategories: ["h", "r"], splitSeed: 1 };
  const a = await openData(spec, { seed: 1, seq: 32 });
  const b = await openData(spec, { seed: 2, seq: 32 });
  deepEqual(a.val.batch(0, { batch: 8 }), b.val.batch(0, { batch: 8 }));
  deepEqual(a.heldout!.batch(3, { batch: 8 }), b.heldout!.batch(3, { batch: 8 }));
  // ...while the training order is the run's own.
  ok(
    !a.train.batch(0, { batch: 8 }).tokens.every((t, i) =>
      t === b.train.batch(0, { batch: 8 }).tokens[i]
    ),
  );
  await rejects(
    openData({ kind: "brown", heldoutCategories: ["z"] }, { seed: 1, seq: 32 }),
    (e: Error) => e instanceof DataError && /unknown Brown category "z"/.test(e.message),
  );
});
