/**
 * The broadcast algorithm on an in-memory network of pipes: every rank gets
 * the root's array, the root's egress carries the bytes once and every
 * other rank's `(n-2)/(n-1)` of them (the slack that lets a late relay catch
 * up), and a malformed header or segment rejects with a one-line error.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { broadcast, type Pipe } from "../collectives/algorithms.ts";
import type { Elem } from "../collectives/types.ts";

/** `n` pipes joined in memory; `sent[r]` counts the elements rank r sent. */
function network(n: number) {
  const queues = new Map<string, { items: Elem[]; waiters: ((e: Elem) => void)[] }>();
  const queue = (src: number, dst: number, stream: number) => {
    const k = `${src}>${dst}/${stream}`;
    if (!queues.has(k)) queues.set(k, { items: [], waiters: [] });
    return queues.get(k)!;
  };
  const sent = new Array(n).fill(0);
  const pipes = Array.from({ length: n }, (_, rank): Pipe => ({
    rank,
    size: n,
    send: (dst, data, stream = 0) => {
      sent[rank] += data.length;
      const q = queue(rank, dst, stream);
      const w = q.waiters.shift();
      if (w) w(data);
      else q.items.push(data);
      return Promise.resolve();
    },
    recv: (src, stream = 0) => {
      const q = queue(src, rank, stream);
      if (q.items.length) return Promise.resolve(q.items.shift()!);
      return new Promise((resolve) => q.waiters.push(resolve));
    },
  }));
  return { pipes, sent };
}

Deno.test("broadcast: every rank gets the root's array; each relay carries (n-2)/(n-1) of it", async () => {
  const length = 1 << 18; // 1 MiB of floats: 64 segments
  for (const n of [2, 3, 4, 5]) {
    for (const root of [0, n - 1]) {
      const want = Float32Array.from({ length }, (_, i) => i * 0.5 + root);
      const { pipes, sent } = network(n);
      const got = await Promise.all(
        pipes.map((p) => broadcast(p, p.rank === root ? want.slice() : null, root)),
      );
      for (const g of got) deepEqual(g, want);
      // The root sends the data once (plus a 3-element header to each rank).
      equal(sent[root], length + 3 * (n - 1), `root's egress, n=${n}`);
      const relayed = sent.filter((_, r) => r !== root);
      const total = relayed.reduce((a, b) => a + b, 0);
      equal(total, (n - 2) * length, `all relays together forward every byte n-2 times, n=${n}`);
      for (const s of relayed) {
        ok(
          s <= ((n - 2) / (n - 1)) * length + (length / 64) * 1.01,
          `a relay forwarded ${s} of ${length} elements, n=${n}`,
        );
      }
    }
  }
});

Deno.test("broadcast: a segment of the wrong type or length rejects, naming it", async () => {
  const { pipes } = network(3);
  // Rank 2 is second in chain 0: it gets segment 0 from rank 1, here forged.
  const forged = pipes[1].send(2, new Int32Array(5), 0);
  await forged;
  const header = pipes[0].send(2, Int32Array.of(1 << 16, 8, 1), 2);
  await header;
  await rejects(
    broadcast(pipes[2], null, 0),
    (e: Error) =>
      e instanceof TypeError &&
      e.message === "broadcast: segment 0 is a Int32Array of 5, expected a Float32Array of 8192",
  );
});

Deno.test("broadcast: a malformed header rejects, naming it", async () => {
  for (const forged of [Int32Array.of(8, 0, 1), Int32Array.of(8, 1), Float32Array.of(8, 1, 1)]) {
    const { pipes } = network(3);
    await pipes[0].send(1, forged, 2);
    await rejects(
      broadcast(pipes[1], null, 0),
      (e: Error) =>
        e instanceof TypeError && e.message === "broadcast: malformed header from the root",
    );
  }
});
