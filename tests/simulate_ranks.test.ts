/**
 * `bench simulate --ranks` end to end at a small size: 2 and 4 rank Workers
 * train on one link, and the checks predict both from the 2-rank top-2
 * steps, with 4 ranks on this machine's cores computing with their share of
 * a core. Timing figures are the benchmark's; this asserts the wiring and
 * what follows from the model, not how close the predictions come.
 */
import assert from "node:assert/strict";
import { measureRanks, RANKS_VARIANTS, ranksChecks } from "../bench/simulate_ranks.ts";

Deno.test("simulate --ranks: 2 and 4 ranks measured on one link, each variant predicted", async () => {
  const variants = RANKS_VARIANTS.slice(0, 2);
  const run = await measureRanks({ sizes: [2, 4], quick: true, measured: 1, variants });
  assert.deepEqual(run.sizes.map((s) => s.ranks), [2, 4]);
  for (const size of run.sizes) {
    assert.ok(size.callMs > 0, `${size.ranks} ranks: unshaped call ${size.callMs} ms`);
    assert.deepEqual(Object.keys(size.stepMs), variants);
    for (const v of variants) assert.ok(size.stepMs[v] > 0, `${size.ranks}/${v}`);
  }
  const checks = ranksChecks(run);
  const at = (ranks: number, variant: string, what: string) =>
    checks.find((c) => c.case === `validate/here/ranks/${ranks}/${variant}/${what}`)!;
  for (const size of run.sizes) {
    for (const v of variants) {
      const step = at(size.ranks, v, "train_step_ms");
      assert.ok(step.predicted > 0 && Number.isFinite(step.predicted), step.case);
      assert.equal(step.measured, size.stepMs[v]);
      if (v === "top2") continue;
      assert.equal(at(size.ranks, v, "train_speedup").measured, size.stepMs.top2 / size.stepMs[v]);
    }
  }
  // Twice the ranks on 2 cores: each rank computes with half a core.
  const onTwo = ranksChecks({ ...run, cores: 2 });
  const top2 = (ranks: number) =>
    onTwo.find((c) => c.case === `validate/here/ranks/${ranks}/top2/train_step_ms`)!.predicted;
  assert.ok(top2(4) / top2(2) > 1.3, `4 ranks on 2 cores predicted ${top2(4) / top2(2)}x 2 ranks`);
});
