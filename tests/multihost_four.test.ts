/**
 * Four hosts on a NATS cluster (root, as on our machines and CI): four host
 * namespaces, each with its own nats-server (a full mesh of routes), its
 * own agent and one rank; the driver in a fifth. ScMoE Pos-2 and top-2 with
 * 8 experts (2 a rank) train with the losses of the same run on 4 local
 * ranks; a server of the cluster killed during the run stops the job with
 * one line naming the rank cut off and the server it cannot reach.
 */
import assert from "node:assert/strict";
import { localLosses, smallRun } from "./helpers/faults.ts";
import { type MultihostResult, multihostTrain } from "../harness/multihost.ts";

const STEPS = 3;
const FLAGS = [...smallRun(STEPS), "--ranks", "4", "--experts", "8"];

async function checkLosses(run: MultihostResult, flags: string[]): Promise<void> {
  assert.ok(run.report, `driver exit ${run.driverExit}: ${run.driverError}`);
  assert.ok(run.routes.every((n) => n >= 3), `routes created: ${run.routes}`);
  const agentOf = (where: string) => /\(agent (\w+)\)$/.exec(where)?.[1];
  assert.deepEqual(run.report.placements.map(agentOf), run.agents, "rank i on host i + 1");
  assert.equal(new Set(run.agents).size, 4);
  const local = await localLosses(flags);
  assert.equal(run.report.losses.length, STEPS);
  for (const [i, loss] of run.report.losses.entries()) {
    assert.ok(Math.abs(loss - local[i]) < 1e-5, `step ${i + 1}: ${loss} vs local ${local[i]}`);
  }
  assert.equal(run.leftover, 0, "agents stopped their actor processes");
}

Deno.test("four hosts, four routed servers: ScMoE Pos-2 with 8 experts, the local losses", async () => {
  const flags = [...FLAGS, "--variant", "scmoe", "--pos", "2"];
  await checkLosses(await multihostTrain({ topology: "routed", hosts: 4, flags, net: 86 }), flags);
});

Deno.test("four hosts, four routed servers: top-2 with 8 experts, the local losses", async () => {
  const flags = [...FLAGS, "--variant", "top2"];
  await checkLosses(await multihostTrain({ topology: "routed", hosts: 4, flags, net: 87 }), flags);
});

Deno.test("four hosts: a server of the cluster killed mid-run stops the job with one line", async () => {
  const flags = [...smallRun(6), "--ranks", "4", "--experts", "8", "--collective-timeout", "5"];
  const run = await multihostTrain({
    topology: "routed",
    hosts: 4,
    flags,
    net: 88,
    killServer: { afterStep: 2, host: 4 },
  });
  assert.ok(run.killedAt, "the server was killed");
  assert.equal(run.driverExit, 3, run.driverLog);
  // Which side of the cut reports first is a race: a rank the others wait
  // on ("did not deliver: 3"), or rank 3 itself, whose client fails over to
  // another server of the cluster and then misses what was sent meanwhile.
  const line = /^error: step (\d+): (.*)$/.exec(run.driverError);
  assert.ok(line, run.driverError);
  assert.ok(Number(line[1]) > 2, `the step after the kill: ${run.driverError}`);
  assert.match(
    line[2],
    /(on rank 3 timed out after 5000 ms; ranks that did not deliver: [0-2](, [0-2])*|timed out after 5000 ms; ranks that did not deliver: 3);/,
  );
  assert.match(
    line[2],
    /the ranks could not be re-formed: .*cannot reach NATS at nats:\/\/10\.213\.88\.5:4222/,
  );
});
