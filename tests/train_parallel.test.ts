/**
 * The driver's rank actors: N ranks train like one rank on the same global
 * batch, and a checkpoint written by 2 ranks loads on 1 and 4 (experts
 * re-sharded) with the same validation loss.
 */
import assert from "node:assert/strict";
import {
  init,
  loadLatestValid,
  type ModelConfig,
  RankGroup,
  type RankSettings,
  resolveConfig,
  shutdown,
} from "../mod.ts";

const SEQ = 16;
const BATCH = 4;

function base(model: ModelConfig, groups?: number): RankSettings {
  return {
    model,
    seed: 3,
    backend: "wasm",
    data: { seq: SEQ, batch: BATCH },
    optimizer: { lr: 3e-3, warmup: 1, total: 10 },
    groups,
  };
}

async function start(model: ModelConfig, size: number, groups?: number): Promise<RankGroup> {
  return (await RankGroup.start(base(model, groups), size, model)).group;
}

Deno.test("2 ranks train like 1 rank on the same global batch", async () => {
  // Default training capacity (CF 2, tokens may drop) and gate noise: the 1-rank
  // run splits its tokens into 2 capacity groups, as the 2 ranks do.
  const model = resolveConfig({ nEmbd: 32, nHead: 2, blockSize: SEQ, variant: "scmoe", pos: 2 });
  await init({ cluster: "local" });
  try {
    const [one, two] = [await start(model, 1, 2), await start(model, 2)];
    for (let step = 0; step < 3; step++) {
      const [[a], [b, b1]] = [
        await one.all((r) => r.trainStep(step)),
        await two.all((r) => r.trainStep(step)),
      ];
      assert.equal(b.loss, b1.loss, "every rank reports the global loss");
      for (const key of ["loss", "lmLoss", "auxLoss", "gradNorm"] as const) {
        assert.ok(Math.abs(a[key] - b[key]) < 1e-5, `step ${step} ${key}: ${a[key]} vs ${b[key]}`);
      }
      assert.equal(a.dropRate, b.dropRate);
      assert.equal(a.tokens, 2 * b.tokens);
    }
  } finally {
    await shutdown();
  }
});

Deno.test("a checkpoint of 2 ranks loads on 1 and 4 with the same validation loss", async () => {
  // Evaluation capacity as large as the batch: no token drops, whatever the layout.
  const model = resolveConfig({
    nEmbd: 32,
    nHead: 2,
    blockSize: SEQ,
    variant: "top2",
    evalCapacityFactor: 4,
  });
  const dir = await Deno.makeTempDir({ prefix: "train_parallel_" });
  await init({ cluster: "local" });
  try {
    const two = await start(model, 2);
    const untrained = (await two.all((r) => r.evaluate(2)))[0];
    for (let step = 0; step < 3; step++) await two.all((r) => r.trainStep(step));
    const trained = (await two.all((r) => r.evaluate(2)))[0];
    assert.ok(trained < untrained - 0.01, `training moved the loss: ${untrained} -> ${trained}`);
    await two.save(dir, { step: 3, seed: 3, ranks: 2 }, { model });

    const found = await loadLatestValid(dir);
    assert.ok(found);
    for (const size of [1, 4]) {
      const group = await start(model, size);
      await group.load(found.contents);
      const losses = await group.all((r) => r.evaluate(2));
      for (const loss of losses) {
        assert.ok(Math.abs(loss - trained) < 1e-5, `${size} ranks: ${loss} vs ${trained}`);
      }
    }
  } finally {
    await shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
