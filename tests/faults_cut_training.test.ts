/**
 * A host cut off in the middle of a training run across hosts (network
 * namespaces, root, as on our machines and CI): host 2, where rank 1 runs,
 * has its link set down after step 3.
 *
 * - Shorter than the heartbeat timeout: rank 0's collectives fail by their
 *   deadline naming rank 1; once the link is back the same ranks re-form and
 *   reload the last checkpoint; the run ends with every step asked and the
 *   loss curve of a clean run.
 * - Longer than the heartbeat timeout: rank 1 is declared dead and restarted
 *   on its own host once the agent there is reachable again (the old process
 *   is killed first); the curve is again the clean one.
 * - For good: the run stops with one line and exit code 3.
 */
import assert from "node:assert/strict";
import { assertSameCurve, localLosses, smallRun } from "./helpers/faults.ts";
import { multihostTrain } from "../harness/multihost.ts";

const STEPS = 8;
const FLAGS = [...smallRun(STEPS), "--ranks", "2", "--ckpt-every", "2"];
const RUN = [...FLAGS, "--collective-timeout", "1.5"];

/** A run of {@linkcode RUN} whose host 2 is cut after step 3 for `forMs` (null: for good). */
function cutRun(net: number, heartbeatMs: number, forMs: number | null) {
  return multihostTrain({
    topology: "single",
    flags: RUN,
    net,
    heartbeatMs,
    cut: { afterStep: 3, forMs },
    deadlineMs: 90_000,
  });
}

/** The run recovered once and its loss curve is that of a clean run; returns its recovery. */
async function assertRecoveredOnce(r: Awaited<ReturnType<typeof multihostTrain>>) {
  assert.ok(r.report, `driver exit ${r.driverExit}: ${r.driverError}`);
  assert.equal(r.report.recoveries.length, 1, r.driverLog);
  const clean = (await localLosses(FLAGS)).map((loss, i) => ({ step: i + 1, loss }));
  assertSameCurve(r.report.losses.map((loss, i) => ({ step: i + 1, loss })), clean);
  return r.report.recoveries[0];
}

Deno.test("cut host in training, back before the heartbeat timeout: same ranks, same curve", async () => {
  const r = await cutRun(83, 10_000, 3000);
  const rec = await assertRecoveredOnce(r);
  assert.match(rec.reason, /^CollectiveTimeoutError: .* ranks that did not deliver: 1$/);
  assert.ok(rec.step >= 4 && rec.resumedFrom === 2 * Math.floor((rec.step - 1) / 2), r.driverLog);
  assert.deepEqual(rec.incarnations, [0, 0], "no rank was restarted");
  assert.equal(r.report!.steps, STEPS);
  assert.equal(r.leftover, 0, "agents stopped their actor processes");
});

Deno.test("cut host in training, longer than the heartbeat timeout: rank 1 restarted on its host", async () => {
  const r = await cutRun(84, 2000, 6000);
  const rec = await assertRecoveredOnce(r);
  assert.deepEqual(rec.incarnations, [0, 1], `rank 1 restarted once: ${r.driverLog}`);
  const [before, after] = [r.report!.placements[1], r.report!.lastPlacements[1]];
  assert.notEqual(after, before, "a new process");
  assert.match(after, new RegExp(`\\(agent ${r.agents[1]}\\)$`), "on host 2");
  assert.equal(r.leftover, 0, "the old process was killed, the new one stopped at the end");
});

Deno.test("cut host in training for good: one line, exit code 3", async () => {
  const r = await cutRun(85, 2000, null);
  assert.equal(r.driverExit, 3, r.driverLog);
  assert.match(
    r.driverError,
    new RegExp(
      "^error: step \\d: (CollectiveTimeoutError: .*ranks that did not deliver: 1|" +
        "actor a1 died: no heartbeat for \\d+ ms); the ranks could not be re-formed: " +
        "agent \\w+ on \\S+ did not answer the request to start a\\d+ within 10 s \\(.+\\)$",
    ),
  );
});
