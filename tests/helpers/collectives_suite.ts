/**
 * The correctness cases every transport must pass, written once over a group
 * factory: each operation against a reference computed here, uneven and empty
 * parts, concurrent tagged calls issued in different orders, untagged calls
 * matched by issue order, point-to-point ordering.
 *
 * @module
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import type { Communicator, Elem } from "../../collectives/types.ts";

/** Makes the group of the given size (index i is rank i). */
export type GroupFactory = (size: number) => Promise<Communicator[]>;

/** A small deterministic generator: integers in [-50, 50), exact in float sums. */
export function ints(seed: number, n: number): number[] {
  let x = (seed * 2654435761 + 1) >>> 0;
  return Array.from({ length: n }, () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return (x >>> 8) % 100 - 50;
  });
}

/** Calls `fn` on every rank at once and collects the results by rank. */
export function onAll<R>(group: Communicator[], fn: (c: Communicator) => Promise<R>): Promise<R[]> {
  return Promise.all(group.map(fn));
}

const arr = (a: Elem) => Array.from(a);

/** Elementwise sum of equal-length rows: the reference of a reduction. */
const sumOf = (rows: number[][]) => rows[0].map((_, k) => rows.reduce((s, row) => s + row[k], 0));

/** Length of the part rank `i` sends to rank `j` in the uneven cases (some empty). */
const partLen = (i: number, j: number) => (i * 7 + j * 3) % 5 === 0 ? 0 : 1 + (i * 13 + j * 5) % 9;

/** Runs every case on one group; `big` adds elements to every array (for chunking). */
export async function checkAllOps(group: Communicator[], big = 0): Promise<void> {
  const n = group.length;

  // alltoallv, Float32 and Int32, uneven and empty parts.
  for (const Ctor of [Float32Array, Int32Array]) {
    const data = (i: number, j: number) => ints(i * 31 + j, partLen(i, j) + (j === 1 ? big : 0));
    const got = await onAll(
      group,
      (c) => c.alltoallv(Array.from({ length: n }, (_, j) => Ctor.from(data(c.rank, j)) as Elem)),
    );
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < n; i++) {
        equal(got[r][i].constructor, Ctor);
        deepEqual(arr(got[r][i]), data(i, r), `alltoallv ${i}->${r}`);
      }
    }
  }

  // allreduce sum and mean over a length that does not divide by n; Int32 sum.
  const len = 11 + big;
  const expectSum = sumOf(group.map((c) => ints(c.rank, len)));
  const sums = await onAll(group, (c) => c.allreduce(Float32Array.from(ints(c.rank, len)), "sum"));
  for (const s of sums) deepEqual(arr(s), expectSum);
  const means = await onAll(
    group,
    (c) => c.allreduce(Float32Array.from(ints(c.rank, len)), "mean"),
  );
  for (const m of means) deepEqual(arr(m), expectSum.map((v) => Math.fround(v / n)));
  const isums = await onAll(group, (c) => c.allreduce(Int32Array.from(ints(c.rank, len)), "sum"));
  for (const s of isums) deepEqual([s.constructor, arr(s)], [Int32Array, expectSum]);
  const empty = await onAll(group, (c) => c.allreduce(new Float32Array(0), "sum"));
  for (const e of empty) equal(e.length, 0);

  // allgather with a different length per rank (one empty).
  const gathered = await onAll(
    group,
    (c) => c.allgather(Int32Array.from(ints(c.rank, c.rank + big))),
  );
  for (const g of gathered) deepEqual(g.map(arr), group.map((c) => ints(c.rank, c.rank + big)));

  // reduceScatter, equal split and explicit uneven counts (one block empty).
  const eq = 3 * n;
  const rsEq = await onAll(
    group,
    (c) => c.reduceScatter(Float32Array.from(ints(c.rank, eq)), "sum"),
  );
  const fullEq = sumOf(group.map((c) => ints(c.rank, eq)));
  rsEq.forEach((b, r) => deepEqual(arr(b), fullEq.slice(3 * r, 3 * r + 3)));
  const counts = Array.from({ length: n }, (_, r) => (r === 1 ? 0 : r + 2 + big));
  const total = counts.reduce((a, b) => a + b, 0);
  const rs = await onAll(
    group,
    (c) => c.reduceScatter(Float32Array.from(ints(c.rank + 9, total)), "mean", { counts }),
  );
  const meanRs = sumOf(group.map((c) => ints(c.rank + 9, total))).map((v) => Math.fround(v / n));
  let at = 0;
  rs.forEach((b, r) => {
    deepEqual(arr(b), meanRs.slice(at, at + counts[r]), `reduceScatter block ${r}`);
    at += counts[r];
  });

  // broadcast from every root.
  for (let root = 0; root < n; root++) {
    const want = ints(root + 100, 5 + big);
    const got = await onAll(
      group,
      (c) => c.broadcast(c.rank === root ? Float32Array.from(want) : null, root),
    );
    for (const g of got) deepEqual(arr(g), want);
  }
  const wantInts = ints(7, 3 + big);
  const gotInts = await onAll(
    group,
    (c) => c.broadcast(c.rank === n - 1 ? Int32Array.from(wantInts) : null, n - 1),
  );
  for (const g of gotInts) {
    ok(g instanceof Int32Array, "a broadcast Int32Array stays an Int32Array");
    deepEqual(arr(g), wantInts);
  }

  await onAll(group, (c) => c.barrier());
}

/** Concurrent tagged collectives, issued in a different order on each rank, never mix. */
export async function checkConcurrentTags(group: Communicator[]): Promise<void> {
  const n = group.length;
  const tags = ["a", "b", "c", "d"];
  const results = await onAll(group, (c) => {
    const order = c.rank % 2 === 0 ? tags : [...tags].reverse();
    return Promise.all(
      order.map((tag) =>
        c.allreduce(Float32Array.from(ints(tag.charCodeAt(0), 64 + tags.indexOf(tag))), "sum", {
          tag,
        })
          .then((v) => [tag, arr(v)] as const)
      ),
    );
  });
  for (const res of results) {
    for (const [tag, v] of res) {
      const len = v.length;
      deepEqual(v, ints(tag.charCodeAt(0), len).map((x) => x * n), `tag ${tag}`);
    }
  }
}

/** Untagged calls match by issue order; point-to-point keeps order per (src, dst, tag). */
export async function checkOrderAndP2p(group: Communicator[]): Promise<void> {
  const n = group.length;
  const res = await onAll(group, (c) =>
    Promise.all([
      c.allgather(Int32Array.of(c.rank)),
      c.allreduce(Int32Array.of(c.rank), "sum"),
      c.allgather(Int32Array.of(10 + c.rank)),
    ]));
  for (const [g1, s, g2] of res) {
    deepEqual(g1.map(arr), group.map((c) => [c.rank]));
    deepEqual(arr(s), [n * (n - 1) / 2]);
    deepEqual(g2.map(arr), group.map((c) => [10 + c.rank]));
  }
  if (n < 2) return;
  const [a, b] = [group[0], group[n - 1]];
  const sends = [0, 1, 2].map((k) => a.send(n - 1, Int32Array.of(k), { tag: "x" }));
  sends.push(a.send(n - 1, Float32Array.of(0.5), { tag: "y" }));
  const y = await b.recv(0, { tag: "y" });
  const xs = [
    await b.recv(0, { tag: "x" }),
    await b.recv(0, { tag: "x" }),
    await b.recv(0, { tag: "x" }),
  ];
  await Promise.all(sends);
  deepEqual([y.constructor, arr(y)], [Float32Array, [0.5]]);
  deepEqual(xs.map(arr), [[0], [1], [2]]);
}
