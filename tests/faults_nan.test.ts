/**
 * A NaN gradient (injected by the test-only `nanGradSteps` hook) makes every
 * rank skip the step: parameters and optimizer state stay as they were, the
 * run goes on, and `--max-bad-steps` NaN steps in a row stop it with one line.
 */
import assert from "node:assert/strict";
import { init, RankGroup, resolveConfig, shutdown, TrainingStopped } from "../mod.ts";
import { trainWithArgs } from "../cli/train.ts";
import { metricLines, smallRun } from "./helpers/faults.ts";

Deno.test("a NaN gradient on one rank: every rank skips the update, state untouched", async () => {
  const model = resolveConfig({ nEmbd: 32, nHead: 2, blockSize: 16, variant: "scmoe", pos: 2 });
  await init({ cluster: "local" });
  try {
    const { group } = await RankGroup.start(
      {
        model,
        seed: 3,
        backend: "wasm",
        data: { seq: 16, batch: 4 },
        optimizer: { lr: 3e-3, warmup: 1, total: 10 },
        nanGradSteps: [2],
      },
      2,
      model,
    );
    for (const step of [0, 1]) {
      assert.ok((await group.all((r) => r.trainStep(step))).every((m) => !m.skipped));
    }
    const before = await group.all((r) => r.exportShard());
    const poisoned = await group.all((r) => r.trainStep(2));
    assert.deepEqual(poisoned.map((m) => m.skipped), [true, true], "both ranks skip");
    assert.ok(Number.isNaN(poisoned[0].gradNorm), "rank 0's own gradient norm is NaN");
    assert.deepEqual(await group.all((r) => r.exportShard()), before, "no parameter moved");
    const next = await group.all((r) => r.trainStep(3));
    assert.ok(next.every((m) => !m.skipped && Number.isFinite(m.loss)));
    const after = await group.all((r) => r.exportShard());
    assert.equal(after[0].optimizerStep, before[0].optimizerStep + 1);
  } finally {
    await shutdown();
  }
});

Deno.test("train: a NaN step is skipped with a warning; --max-bad-steps in a row stop the run", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "faults_nan_" });
  const warnings: string[] = [];
  const error = console.error;
  console.error = (line: string) => warnings.push(line);
  try {
    const flags = [...smallRun(6), "--max-bad-steps", "2"];
    const run = await trainWithArgs([...flags, "--out", `${tmp}/one`], {
      nanGradSteps: [2],
      checkpoints: false,
    });
    assert.deepEqual(run.skippedSteps, [3]);
    assert.ok(Number.isFinite(run.valLoss));
    const lines = await metricLines(`${tmp}/one`);
    assert.deepEqual(lines.map((m) => m.step), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(lines.map((m) => m.skipped ?? 0), [0, 0, 1, 0, 0, 0]);
    assert.ok(
      warnings.some((w) => /^warning: step 3: loss .*NaN or infinite.*step skipped/.test(w)),
      warnings.join("\n"),
    );

    await assert.rejects(
      trainWithArgs([...flags, "--out", `${tmp}/two`], {
        nanGradSteps: [1, 3, 4],
        checkpoints: false,
      }),
      (e: Error) => {
        assert.ok(e instanceof TrainingStopped, String(e));
        assert.equal(
          e.message,
          "2 NaN/Inf steps in a row (steps 4-5); stopping (--max-bad-steps 2)",
        );
        return true;
      },
    );
  } finally {
    console.error = error;
    await Deno.remove(tmp, { recursive: true });
  }
});
