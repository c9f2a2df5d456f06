import { equal, match, ok, rejects } from "node:assert/strict";
import { createMemoryGroup } from "../collectives/memory.ts";
import { CollectiveTimeoutError, PeerDiedError } from "../collectives/errors.ts";
import {
  checkAllOps,
  checkConcurrentTags,
  checkOrderAndP2p,
  onAll,
} from "./helpers/collectives_suite.ts";

for (let n = 1; n <= 5; n++) {
  Deno.test(`memory: every op against its reference, ${n} ranks`, async () => {
    const group = createMemoryGroup(n);
    await checkAllOps(group);
    await checkConcurrentTags(group);
    await checkOrderAndP2p(group);
  });
}

Deno.test("memory: random delivery delays keep every result", async () => {
  for (const n of [3, 4]) {
    const group = createMemoryGroup(n, { jitterMs: 3 });
    await checkAllOps(group);
    await checkConcurrentTags(group);
    await checkOrderAndP2p(group);
  }
});

Deno.test("memory: reductions cut into pipelined segments, uneven blocks", async () => {
  // 200k elements over 3 ranks: blocks of about 270 KB, two uneven segments each.
  const group = createMemoryGroup(3, { jitterMs: 1 });
  await checkAllOps(group, 200_000);
});

Deno.test("memory: a shaped link delays an all-to-all by its transfer time", async () => {
  const bw = 50e6; // 50 MB/s per rank egress
  const group = createMemoryGroup(3, { link: { bandwidthBytesPerS: bw, latencyS: 0.002 } });
  const part = 1 << 20; // 1 MiB per peer, 2 MiB per rank egress: 42 ms + 2 ms
  const expect = (2 * part / bw) * 1e3 + 2;
  const timed = async () => {
    const t0 = performance.now();
    await onAll(group, (c) => c.alltoallv([0, 1, 2].map(() => new Float32Array(part / 4))));
    return performance.now() - t0;
  };
  // Never faster than the link; a busy machine can make one call late, so the fastest of up
  // to three is held to the upper bound.
  let ms = await timed();
  for (let tries = 1; tries < 3 && ms >= expect + 40; tries++) ms = Math.min(ms, await timed());
  ok(ms >= expect * 0.95 && ms < expect + 40, `took ${ms} ms, link says ${expect} ms`);
});

Deno.test("memory: a deadline rejects with the ranks that did not deliver", async () => {
  const group = createMemoryGroup(4, { timeoutMs: 100 });
  const t0 = performance.now();
  // Ranks 1 and 3 never join.
  const calls = [group[0], group[2]].map((c) =>
    c.alltoallv([0, 1, 2, 3].map(() => new Int32Array(1)))
  );
  for (const p of calls) {
    await rejects(p, (e) => {
      ok(e instanceof CollectiveTimeoutError);
      match(
        e.message,
        /alltoallv on rank [02] timed out after 100 ms; ranks that did not deliver: 1, 3$/,
      );
      return true;
    });
  }
  ok(performance.now() - t0 < 400);
  // A per-call deadline overrides the group default.
  await rejects(
    group[0].barrier({ timeoutMs: 20, tag: "late" }),
    /barrier \(tag "late"\) on rank 0 timed out after 20 ms/,
  );
});

Deno.test("memory: a dead peer rejects pending and later calls at once", async () => {
  const group = createMemoryGroup(3);
  const pending = group[0].allreduce(new Float32Array(8), "sum");
  const p2p = group[0].recv(2, { tag: "z" });
  setTimeout(() => group[0].markPeerDied(2, "process exited"), 10);
  const t0 = performance.now();
  for (const p of [pending, p2p]) {
    await rejects(p, (e) => {
      ok(e instanceof PeerDiedError);
      equal(e.message, "peer rank 2 died: process exited");
      return true;
    });
  }
  ok(performance.now() - t0 < 200);
  await rejects(group[0].barrier(), PeerDiedError);
  await Promise.all(group.map((c) => c.close()));
});
