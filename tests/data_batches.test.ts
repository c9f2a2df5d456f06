import assert from "node:assert/strict";
import { WindowSampler } from "../models/data.ts";

/** Tokens 0,1,2,... (mod 256) so a window's position can be read off its first token. */
function ramp(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => i % 251);
}

function rows(b: { tokens: Int32Array; rows: number; cols: number }): number[][] {
  return Array.from(
    { length: b.rows },
    (_, i) => [...b.tokens.subarray(i * b.cols, (i + 1) * b.cols)],
  );
}

Deno.test("rank shards of N = 2 and 4 concatenate to the N = 1 batch", () => {
  const s = new WindowSampler(ramp(10_000), { seq: 16, seed: 42 });
  for (const step of [0, 5, 77]) {
    const whole = s.batch(step, { batch: 8 });
    assert.equal(whole.rows, 8);
    assert.equal(whole.cols, 17);
    for (const size of [2, 4]) {
      const parts = Array.from(
        { length: size },
        (_, rank) => s.batch(step, { batch: 8, rank, size }),
      );
      assert.ok(parts.every((p) => p.rows === 8 / size));
      assert.deepEqual(parts.flatMap(rows), rows(whole));
    }
  }
});

Deno.test("windows are stride-T slices of the tokens, each once per epoch", () => {
  const tokens = ramp(1 + 10 * 8); // exactly 10 windows of 9 tokens at stride 8
  const s = new WindowSampler(tokens, { seq: 8, seed: 1 });
  assert.equal(s.numWindows, 10);
  assert.equal(s.batchesPerEpoch(4), 2);
  const starts = (epoch: number) =>
    Array.from({ length: 5 }, (_, k) => rows(s.batch(epoch * 5 + k, { batch: 2 })))
      .flat()
      .map((row) => {
        const start = row[0];
        assert.deepEqual(row, [...tokens.subarray(start, start + 9)]);
        return start / 8;
      });
  const e0 = starts(0);
  const e1 = starts(1);
  assert.deepEqual([...e0].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual([...e1].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual(e0, e1, "a new order each epoch");
  assert.notDeepEqual(e0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "shuffled");
});

Deno.test("batches are a pure function of (seed, step): a fresh sampler resumes the stream", () => {
  const tokens = ramp(5_000);
  const a = new WindowSampler(tokens, { seq: 32, seed: 9 });
  const seen = Array.from({ length: 40 }, (_, step) => rows(a.batch(step, { batch: 6 })));
  const b = new WindowSampler(tokens, { seq: 32, seed: 9 });
  for (const step of [39, 12, 25]) assert.deepEqual(rows(b.batch(step, { batch: 6 })), seen[step]);
  const c = new WindowSampler(tokens, { seq: 32, seed: 10 });
  assert.notDeepEqual(rows(c.batch(0, { batch: 6 })), seen[0]);
  assert.notDeepEqual(seen[1], seen[0]);
});

Deno.test("unshuffled sampler serves windows in order", () => {
  const s = new WindowSampler(ramp(1_000), { seq: 10, seed: 5, shuffle: false });
  assert.deepEqual(rows(s.batch(1, { batch: 3 })).map((r) => r[0]), [30, 40, 50]);
});

Deno.test("bad shapes and shards are rejected with the numbers in the message", () => {
  const s = new WindowSampler(ramp(1_000), { seq: 10, seed: 5 });
  assert.throws(() => s.batch(0, { batch: 6, size: 4 }), {
    name: "RangeError",
    message: "batch 6 is not a positive multiple of 4 ranks",
  });
  assert.throws(() => s.batch(0, { batch: 8, rank: 4, size: 4 }), {
    name: "RangeError",
    message: "rank 4 is not in a group of 4",
  });
  assert.throws(() => s.batch(-1, { batch: 8 }), RangeError);
  assert.throws(() => new WindowSampler(ramp(10), { seq: 10, seed: 1 }), {
    name: "RangeError",
    message: "10 tokens hold no window of 11",
  });
});
