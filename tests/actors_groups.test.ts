/**
 * The driver makes actors a collective group; members join it from inside
 * and move arrays among themselves, over both clusters. A member's death
 * fails the others' pending collectives at once.
 */
import assert from "node:assert/strict";
import { createGroup, get, init, kill, remote, shutdown } from "../actors/mod.ts";
import type { GroupMember } from "./fixtures/actors.ts";

const Member = remote<typeof GroupMember>(
  new URL("./fixtures/actors.ts", import.meta.url),
  "GroupMember",
);

for (const cluster of ["local", "nats"] as const) {
  Deno.test(`actors form collective groups (${cluster})`, async () => {
    await init({ cluster, heartbeatTimeoutMs: 1500, heartbeatIntervalMs: 200 });
    try {
      const n = 3;
      const members = await Promise.all(Array.from({ length: n }, () => Member.remote()));
      createGroup(members, { groupId: "g1", timeoutMs: 20_000 });
      const sums = await get(
        members.map((m, r) => m.allreduce("g1", new Float32Array([r, 10 * r, 1]))),
      );
      for (const s of sums) assert.deepEqual(s, new Float32Array([3, 30, 3]));
      const parts = (r: number) =>
        Array.from({ length: n }, (_, d) => new Int32Array(d + 1).fill(100 * r + d));
      const got = await get(members.map((m, r) => m.alltoall("g1", parts(r))));
      got.forEach((fromAll, d) =>
        fromAll.forEach((arr, src) =>
          assert.deepEqual(arr, new Int32Array(d + 1).fill(100 * src + d))
        )
      );

      createGroup(members, { groupId: "g2" });
      const waiting = [members[0].barrier("g2", 30_000), members[1].barrier("g2", 30_000)];
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      await kill(members[2]);
      const outcomes = await get(waiting);
      for (const o of outcomes) assert.match(o, /^PeerDiedError: .*rank 2/);
      assert.ok(performance.now() - t0 < 2000, "the survivors learned of the death at once");
    } finally {
      await shutdown();
    }
  });
}
