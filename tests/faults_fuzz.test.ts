/**
 * 10,000 malformed frames from an independent NATS client on a training
 * job's control subjects (driver and ranks) and data subjects (the ranks'
 * collective group), published while it trains: no crash, no hang, the same
 * losses as a clean run, and every frame sent to the driver or to the data
 * plane counted as rejected.
 */
import assert from "node:assert/strict";
import { runtimeStats } from "../actors/mod.ts";
import { type FuzzCounts, jobFuzzTarget, publishFuzz } from "../harness/fuzz_frames.ts";
import { trainWithArgs } from "../cli/train.ts";
import { assertSameCurve, metricLines, smallRun } from "./helpers/faults.ts";

const FRAMES = 10_000;

Deno.test("10,000 malformed frames on control and data subjects during training", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "faults_fuzz_" });
  try {
    const flags = [...smallRun(10), "--cluster", "nats"];
    await trainWithArgs([...flags, "--out", `${tmp}/clean`], { verbose: false });

    let fuzzing: Promise<FuzzCounts> | undefined;
    let counts: FuzzCounts | undefined;
    let rejected = { driver: 0, data: 0 };
    await trainWithArgs([...flags, "--out", `${tmp}/fuzz`], {
      verbose: false,
      onStep: async (step, group) => {
        if (step === 1) {
          const before = runtimeStats().rejectedFrames;
          assert.equal(before, 0);
          fuzzing = publishFuzz(jobFuzzTarget(group), FRAMES);
        }
        if (step !== 10) return;
        counts = await fuzzing!;
        // Delivery trails the fuzzer's flush a little: wait for the counters to settle.
        for (let tries = 0; tries < 100; tries++) {
          const data = (await group.all((r) => r.droppedFrames())).reduce((a, b) => a + b, 0);
          rejected = { driver: runtimeStats().rejectedFrames, data };
          if (rejected.driver >= counts.driver && rejected.data >= counts.data) break;
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    });
    assert.ok(counts, "the fuzzer ran");
    assert.equal(counts.driver + counts.actors + counts.data + counts.otherJob, FRAMES);
    assert.ok(counts.data >= 3000 && counts.actors >= 2000, JSON.stringify(counts));
    assert.deepEqual(rejected, { driver: counts.driver, data: counts.data });

    const [clean, fuzzed] = [await metricLines(`${tmp}/clean`), await metricLines(`${tmp}/fuzz`)];
    assertSameCurve(fuzzed, clean);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
