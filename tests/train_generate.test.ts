/**
 * Sampling rules, and `generate` through the expert-parallel path: greedy
 * text from a checkpoint is the same on 1 and 2 ranks.
 */
import assert from "node:assert/strict";
import {
  generate,
  init,
  RankGroup,
  resolveConfig,
  sampleToken,
  seededUniform,
  shutdown,
} from "../mod.ts";
import { parseGenerateArgs } from "../cli/generate.ts";
import { UsageError } from "../cli/flags.ts";

Deno.test("sampling: greedy takes the argmax, top-p keeps the likeliest tokens", () => {
  const logits = new Float32Array([0.5, 3.0, 2.9, -1.0]);
  const u = seededUniform(1);
  assert.equal(sampleToken(logits, { greedy: true }, u), 1);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 2000; i++) counts[sampleToken(logits, { topP: 0.9 }, u)]++;
  assert.equal(counts[3], 0, "the least likely token is cut by top-p");
  assert.ok(counts[1] > counts[2] && counts[2] > counts[0], counts.join());
  const few = [0, 0, 0, 0];
  for (let i = 0; i < 200; i++) few[sampleToken(logits, { temperature: 0.05 }, u)]++;
  assert.ok(few[1] > 100 && few[0] === 0 && few[3] === 0, few.join());
  const again = seededUniform(1);
  assert.equal(seededUniform(1)(), again());
});

Deno.test("generate: flags are checked, greedy text is the same on 1 and 2 ranks", async () => {
  assert.throws(() => parseGenerateArgs(["--prompt", "x"]), UsageError);
  assert.throws(
    () => parseGenerateArgs(["--checkpoint", "d", "--prompt", "x", "--top-p", "2"]),
    /--top-p must be a number in \(0, 1\]/,
  );
  const dir = await Deno.makeTempDir({ prefix: "train_generate_" });
  try {
    const model = resolveConfig({ nEmbd: 32, nHead: 2, blockSize: 16, variant: "scmoe" });
    await init({ cluster: "local" });
    try {
      const { group } = await RankGroup.start(
        {
          model,
          seed: 5,
          backend: "wasm",
          data: { seq: 16, batch: 4 },
          optimizer: { lr: 1e-2, warmup: 1, total: 4 },
        },
        2,
        model,
      );
      for (let step = 0; step < 4; step++) await group.all((r) => r.trainStep(step));
      await group.save(dir, { step: 4, seed: 5, ranks: 2 }, { model });
    } finally {
      await shutdown();
    }
    const { options } = parseGenerateArgs([
      "--checkpoint",
      dir,
      "--prompt",
      "The jury said that the",
      "--max-tokens",
      "6",
      "--greedy",
    ]);
    const one = await generate({ ...options, ranks: 1 });
    const two = await generate({ ...options, ranks: 2 });
    assert.equal(one.length, 6);
    assert.deepEqual(two, one);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
