/**
 * nats-server killed and started again (same port and token) in the middle of
 * training on a `nats://` cluster: the driver fails the step in flight when
 * its connection drops, every client reconnects, the ranks (not declared
 * dead: the outage is shorter than the heartbeat timeout) re-form their group
 * at the last checkpoint, and the run ends with the steps asked and the loss
 * curve of an uninterrupted run. Below the runtime, a collective in flight
 * during the outage fails by its deadline, and the same communicators work
 * again afterwards.
 */
import assert from "node:assert/strict";
import { startNatsServer } from "../actors/mod.ts";
import { freePort } from "../actors/nats_server.ts";
import { restartNats, STEPS } from "../harness/fault_cases.ts";
import { trainWithArgs } from "../cli/train.ts";
import { createCommunicator } from "../collectives/comm.ts";
import { assertSameCurve, metricLines, smallRun } from "./helpers/faults.ts";

Deno.test("nats-server restart mid-training: reconnected, resumed at the checkpoint, same loss curve", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "faults_nats_" });
  try {
    const flags = [...smallRun(STEPS), "--ckpt-every", "3", "--out", `${tmp}/clean`];
    await trainWithArgs(flags, { verbose: false });
    const clean = await metricLines(`${tmp}/clean`);

    const r = await restartNats(`${tmp}/r`);
    assert.ok(r.survived, r.note);
    assert.ok(r.detectMs < 1000, `detected after ${r.detectMs} ms`);
    assert.equal(r.stepsRedone, 1, r.note);
    assert.equal(r.dataLost, 0);
    assert.match(r.note, /resumed at step 3, ranks kept \(incarnations 0,0\)/);
    const lines = await metricLines(`${tmp}/r`);
    assert.deepEqual(lines.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);
    assertSameCurve(lines, clean);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("nats-server restart under a collective: it fails by its deadline, the next one succeeds", async () => {
  const port = freePort();
  let server = await startNatsServer({ port });
  const token = server.token!;
  const spec = {
    kind: "nats" as const,
    groupId: "restart",
    size: 2,
    servers: [server.url],
    token,
    jobId: crypto.randomUUID().slice(0, 8),
    timeoutMs: 1500,
  };
  const comms = await Promise.all([0, 1].map((rank) => createCommunicator({ ...spec, rank })));
  try {
    const sum = (tag: string, ranks = comms) =>
      Promise.all(ranks.map((c, i) => c.allreduce(Float32Array.of(i + 1), "sum", { tag })));
    assert.deepEqual((await sum("before")).map((x) => x[0]), [3, 3]);
    // Rank 0 enters the collective, then the server dies before rank 1 sends.
    const pending = sum("during", [comms[0]]);
    await server.stop();
    const t0 = Date.now();
    await assert.rejects(pending, /timed out after 1500 ms; ranks that did not deliver: 1/);
    assert.ok(Date.now() - t0 < 3000, "failed by its deadline");
    server = await startNatsServer({ port, token });
    let after: Float32Array[] | undefined;
    for (let i = 0; i < 20 && !after; i++) {
      after = await sum(`after-${i}`).catch(() => undefined);
    }
    assert.deepEqual(after?.map((x) => x[0]), [3, 3], "a collective after the reconnect");
  } finally {
    await Promise.all(comms.map((c) => c.close()));
    await server.stop();
  }
});
