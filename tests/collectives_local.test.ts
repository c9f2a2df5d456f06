import { equal, ok, rejects } from "node:assert/strict";
import { createCommunicator } from "../collectives/comm.ts";
import { CollectiveTimeoutError, PeerDiedError } from "../collectives/errors.ts";
import { meshPorts } from "../collectives/local.ts";
import type { LinkModel } from "../collectives/types.ts";
import { checkAllOps, checkConcurrentTags, checkOrderAndP2p } from "./helpers/collectives_suite.ts";

function localGroup(
  n: number,
  extra: { link?: LinkModel; jitterMs?: number; timeoutMs?: number } = {},
) {
  const mesh = meshPorts(n);
  return Promise.all(
    mesh.map((ports, rank) =>
      createCommunicator({ kind: "local", groupId: "t", rank, size: n, ports, ...extra })
    ),
  );
}

Deno.test("local: every op against its reference, 1 to 5 ranks on comm workers", async () => {
  for (let n = 1; n <= 5; n++) {
    const group = await localGroup(n);
    await checkAllOps(group);
    await checkConcurrentTags(group);
    await checkOrderAndP2p(group);
    await Promise.all(group.map((c) => c.close()));
  }
});

Deno.test("local: random delivery delays, big arrays", async () => {
  const group = await localGroup(4, { jitterMs: 4 });
  await checkAllOps(group, 50_000);
  await checkConcurrentTags(group);
  await checkOrderAndP2p(group);
  await Promise.all(group.map((c) => c.close()));
});

Deno.test("local: deadline and peer death cross the worker boundary as their classes", async () => {
  const group = await localGroup(3, { timeoutMs: 80 });
  await rejects(group[0].allreduce(new Float32Array(6), "sum"), (e) => {
    ok(e instanceof CollectiveTimeoutError);
    equal(e.message, "allreduce on rank 0 timed out after 80 ms; ranks that did not deliver: 2");
    return true;
  });
  const pending = group[1].alltoallv([0, 1, 2].map(() => new Int32Array(2)), { timeoutMs: 10_000 });
  const t0 = performance.now();
  group[1].markPeerDied(0, "gone");
  await rejects(
    pending,
    (e) => e instanceof PeerDiedError && e.message === "peer rank 0 died: gone",
  );
  await rejects(group[1].barrier(), PeerDiedError);
  ok(performance.now() - t0 < 100);
  await Promise.all(group.map((c) => c.close()));
});
