/**
 * `kill -9` of a rank process in the middle of a NATS training run: the death
 * is seen within the heartbeat timeout, the survivor's pending collective
 * fails at once, the rank is restarted, every rank reloads the last
 * checkpoint in a new group, and the run ends with the steps asked and the
 * loss curve of an uninterrupted run. With no recovery budget the CLI stops
 * with one line and exit code 3.
 */
import assert from "node:assert/strict";
import { placementOf } from "../actors/mod.ts";
import { trainWithArgs } from "../cli/train.ts";
import {
  assertSameCurve,
  killAfterSteps,
  metricLines,
  smallRun,
  trainCliChild,
} from "./helpers/faults.ts";

const HEARTBEAT_TIMEOUT_MS = 1500;

Deno.test("kill -9 of a rank mid-step: restarted, reloaded, the same loss curve to the end", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "faults_kill_" });
  try {
    const flags = [...smallRun(8), "--ckpt-every", "3"];
    await trainWithArgs([...flags, "--out", `${tmp}/clean`], { verbose: false });
    const clean = await metricLines(`${tmp}/clean`);

    let killedAt = 0;
    let killedPid = 0;
    const run = await trainWithArgs([
      ...flags,
      "--cluster",
      "nats",
      "--max-restarts",
      "1",
      "--out",
      `${tmp}/k`,
    ], {
      verbose: false,
      init: { heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS },
      onStep: (step, group) => {
        if (step !== 4 || killedAt) return;
        killedPid = Number(/process (\d+)/.exec(placementOf(group.handles[1]))![1]);
        // Into step 5: the survivor is then inside a collective with the dead rank.
        setTimeout(() => {
          killedAt = Date.now();
          Deno.kill(killedPid, "SIGKILL");
        }, 40);
      },
    });
    assert.ok(killedAt > 0, "the rank was killed");
    assert.equal(run.recoveries.length, 1, JSON.stringify(run.recoveries));
    const [r] = run.recoveries;
    const detectMs = r.detectedAt - killedAt;
    assert.ok(detectMs < HEARTBEAT_TIMEOUT_MS, `detected after ${detectMs} ms`);
    // The collective timeout is 120 s: a recovery this fast means the survivor's
    // pending collective failed at once instead of waiting for its deadline.
    assert.ok(r.recoveredAt - killedAt < 20_000, `recovered after ${r.recoveredAt - killedAt} ms`);
    assert.deepEqual(
      { step: r.step, resumedFrom: r.resumedFrom, stepsRedone: r.stepsRedone },
      { step: 5, resumedFrom: 3, stepsRedone: 1 },
    );
    assert.deepEqual(r.incarnations, [0, 1], "rank 1 was restarted by the runtime");
    assert.equal(run.steps, 8);

    const lines = await metricLines(`${tmp}/k`);
    assert.deepEqual(lines.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);
    assertSameCurve(lines, clean);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("kill -9 with --max-restarts 0: one line naming the budget, exit code 3", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "faults_budget_" });
  try {
    const child = trainCliChild([
      ...smallRun(40),
      "--cluster",
      "nats",
      "--max-restarts",
      "0",
      "--out",
      `${tmp}/b`,
    ]);
    await killAfterSteps(child, `${tmp}/b`, 3);
    const { code, stderr } = await child.done;
    assert.equal(code, 3, stderr);
    const errors = stderr.split("\n").filter((l) => l.startsWith("error: "));
    assert.equal(errors.length, 1, stderr);
    assert.match(errors[0], /^error: step \d+: .*died.*; recovery budget spent \(--max-restarts 0/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
