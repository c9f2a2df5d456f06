/**
 * Training across hosts: network namespaces on one bridge (root, as on our
 * machines and CI), host agents in two of them, the driver in another, and
 * either one nats-server or a cluster of two routed nats-servers (one per
 * host, each host's agent and ranks on their own). Rank 0 runs on host 1,
 * rank 1 on host 2; the run completes the steps asked with the losses of
 * the same run on local ranks. Only the namespaces' addresses are used.
 */
import assert from "node:assert/strict";
import { localLosses, smallRun } from "./helpers/faults.ts";
import { type MultihostResult, multihostTrain } from "../harness/multihost.ts";
import type { DriverReport } from "../harness/multihost_driver.ts";

const STEPS = 4;
const FLAGS = [...smallRun(STEPS), "--ranks", "2"];

async function check(run: MultihostResult): Promise<void> {
  assert.ok(run.report, `driver exit ${run.driverExit}: ${run.driverError}`);
  const r: DriverReport = run.report;
  const agentOf = (where: string) => /\(agent (\w+)\)$/.exec(where)?.[1];
  assert.deepEqual(r.placements.map(agentOf), run.agents, `placements: ${r.placements}`);
  assert.notEqual(run.agents[0], run.agents[1]);
  assert.equal(r.steps, STEPS);
  const local = await localLosses(FLAGS);
  assert.equal(r.losses.length, STEPS);
  for (const [i, loss] of r.losses.entries()) {
    assert.ok(Math.abs(loss - local[i]) < 1e-5, `step ${i + 1}: ${loss} vs local ${local[i]}`);
  }
  // Each rank's connections (bus, heartbeat, collectives) come from its own
  // host's address and go to that host's server.
  for (const rank of [0, 1]) {
    // Names are `<prefix>-<actor>`, `<prefix>-<actor>-hb` and
    // `<prefix>-<group>-<rank>`; match whole name parts, since a random job
    // id may contain an actor id as a substring.
    const names = [`-${r.actorIds[rank]}`, `-${r.actorIds[rank]}-hb`, `-${r.groupId}-${rank}`];
    const mine = r.connections.filter((c) => names.some((n) => c.name.endsWith(n)));
    assert.equal(mine.length, 3, `rank ${rank}: ${JSON.stringify(r.connections)}`);
    for (const c of mine) {
      assert.deepEqual(
        { ip: c.ip, server: c.server },
        { ip: run.hostAddresses[rank], server: run.hostServers[rank] },
        `rank ${rank}: ${c.name}`,
      );
    }
  }
  assert.deepEqual(run.agentExits, [0, 0], "agents exit cleanly on SIGINT");
  assert.equal(run.leftover, 0, "agents stopped their actor processes");
}

Deno.test("multi-host: one nats-server, ranks on two host namespaces, the local losses", async () => {
  const r = await multihostTrain({ topology: "single", flags: FLAGS, net: 80 });
  await check(r);
});

Deno.test("multi-host: two routed nats-servers, each host on its own, the local losses", async () => {
  const r = await multihostTrain({ topology: "routed", flags: FLAGS, net: 81 });
  assert.ok(r.routes.every((n) => n >= 1), `routes created: ${r.routes}`);
  await check(r);
});
