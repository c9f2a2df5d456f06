/**
 * `examples/moe_mixer.ts`, a model that is not our GPT, built by its user
 * from the public MoE layer: on 2 ranks its loss and gradients (dense and
 * expert) equal one process's on the same global batch, for every MoE
 * variant, and the scheduler overlaps the layer's all-to-alls with the
 * mixer's own steps as it does with the GPT's.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { copyBatch, MIXER, mixer } from "../examples/moe_mixer.ts";
import { createMemoryGroup } from "../collectives/memory.ts";
import { setupBackend } from "../models/backend.ts";
import { createModel, disposeModel, trainStep } from "../models/model.ts";
import type { MoeVariant } from "../models/moe_layer.ts";
import { explainOverlap, OverlapScheduler } from "../models/scheduler.ts";
import { relErr } from "./helpers/numeric.ts";

const ROWS = 2, SIZE = 2;

for (const variant of ["top1", "top2", "se", "dgmoe", "scmoe"] as MoeVariant[]) {
  Deno.test(`examples/moe_mixer.ts: ${variant} on 2 ranks has one process's gradients`, async () => {
    await setupBackend("cpu");
    const cfg = { ...MIXER, variant };
    const shards = [0, 1].map((r) => copyBatch(3, r, ROWS, cfg));
    const global = {
      tokens: Int32Array.from(shards.flatMap((b) => [...b.tokens])),
      rows: ROWS * SIZE,
      cols: shards[0].cols,
    };
    const plain = createModel(mixer(cfg), { seed: 2 });
    const ref = await trainStep(plain, global, { groups: SIZE, step: 3 });
    const comms = createMemoryGroup(SIZE);
    const ranks = comms.map((c) => createModel(mixer(cfg), { rank: c.rank, size: SIZE, seed: 2 }));
    const got = await Promise.all(
      ranks.map((m, r) => trainStep(m, shards[r], { comm: comms[r], step: 3 })),
    );
    try {
      for (const res of got) {
        ok(Math.abs(res.loss - ref.loss) < 1e-5 * Math.abs(ref.loss), `${res.loss} vs ${ref.loss}`);
        deepEqual(res.stats, ref.stats);
        ok(res.overlap && res.overlap.blocks.length === 2, "both MoE layers measured");
      }
      for (const [name, g] of ref.grads) {
        const holders = got.filter((res) => res.grads.has(name));
        equal(holders.length, /\.experts\.\d+\./.test(name) ? 1 : SIZE, name);
        for (const res of holders) {
          const err = relErr(g.dataSync(), res.grads.get(name)!.dataSync());
          ok(err < 1e-4, `${name}: relative error ${err}`);
        }
      }
    } finally {
      for (const res of [ref, ...got]) tf.dispose([...res.grads.values()]);
      for (const m of [plain, ...ranks]) disposeModel(m);
    }
  });
}

Deno.test("examples/moe_mixer.ts: the all-to-alls overlap the mixer's own steps", () => {
  const scheduler = new OverlapScheduler({ slot: 2 });
  const text = explainOverlap(mixer(), scheduler);
  deepEqual(scheduler.gates.map((g) => g.window.ops), [
    ["blocks.0.mlp", "blocks.1.mix", "blocks.1.moe.shared"],
    ["blocks.2.mlp", "blocks.3.mix", "blocks.3.moe.shared"],
  ]);
  ok(
    /forward +blocks\.1\.moe\.gate\.dispatch +overlaps blocks\.0\.mlp, blocks\.1\.mix/.test(text),
    text,
  );
  ok(/forward +blocks\.1\.moe\.gate\.combine +overlaps blocks\.1\.moe\.shared/.test(text), text);
  ok(
    /backward +blocks\.1\.moe\.gate\.dispatch +overlaps blocks\.1\.mix, blocks\.0\.mlp/.test(text),
    text,
  );
});
