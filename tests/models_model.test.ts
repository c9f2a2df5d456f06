import { deepEqual, equal, ok, throws } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../models/backend.ts";
import { resolveConfig } from "../models/config.ts";
import { createModel, disposeModel, forward, trainStep } from "../models/model.ts";
import { gpt, paramSpecs } from "../models/gpt.ts";
import { serialOrder } from "../models/scheduler.ts";
import { TINY_MODEL } from "./helpers/tiny_model.ts";

const TINY = TINY_MODEL;

Deno.test("model: parameters are named by role with global expert indices", () => {
  const names = paramSpecs(resolveConfig({ ...TINY, variant: "scmoe", combiner: "cg2" })).map((s) =>
    s.name
  );
  for (
    const n of [
      "wte",
      "wpe",
      "blocks.0.attn.wqkv",
      "blocks.0.mlp.w1",
      "blocks.1.moe.gate.wg",
      "blocks.1.moe.gate.wn",
      "blocks.1.moe.ln_tap.g",
      "blocks.1.moe.shared.w2",
      "blocks.1.moe.cg.w",
      "blocks.3.moe.experts.3.b2",
      "lnf.g",
    ]
  ) ok(names.includes(n), n);
  ok(!names.includes("blocks.1.mlp.w1"), "an MoE block has no dense MLP");
});

Deno.test("model: ranks hold the dense replicas and their own experts, equal to one process", async () => {
  await setupBackend("cpu");
  const cfg = { ...TINY, variant: "top2" as const };
  const whole = createModel(cfg, { seed: 9 });
  const ranks = [0, 1].map((rank) => createModel(cfg, { rank, size: 2, seed: 9 }));
  deepEqual(ranks.map((m) => m.experts), [[0, 2], [2, 4]]);
  ok(
    ranks[1].params.has("blocks.3.moe.experts.3.w1") &&
      !ranks[1].params.has("blocks.3.moe.experts.1.w1"),
  );
  for (const [name, v] of whole.params) {
    const holders = ranks.filter((m) => m.params.has(name));
    equal(holders.length, /experts/.test(name) ? 1 : 2, name);
    for (const m of holders) deepEqual(m.params.get(name)!.dataSync(), v.dataSync());
  }
  for (const m of [whole, ...ranks]) disposeModel(m);
});

Deno.test("model: configuration mistakes are refused", () => {
  throws(() => resolveConfig({ variant: "scmoe", moeEvery: 1, pos: 2 }), /Pos-1/);
  equal(resolveConfig({ variant: "scmoe", moeEvery: 1 }).pos, 1);
  throws(() => resolveConfig({ variant: "dgmoe", moeEvery: 1 }), /dgmoe/);
  throws(() => resolveConfig({ nEmbd: 30, nHead: 4 }), /nHead/);
  throws(() => createModel({ ...TINY, nExperts: 6 }, { size: 4 }), /6 experts/);
});

Deno.test("model: a token's logits do not depend on later tokens", async () => {
  await setupBackend("cpu");
  const model = createModel({ ...TINY, variant: "scmoe", evalCapacityFactor: 8 });
  const a = new Int32Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const b = a.slice();
  b[6] = 30;
  const [la, lb] = await Promise.all(
    [a, b].map((tokens) => forward(model, { tokens, batchSize: 1, seqLen: 8 })),
  );
  const [xa, xb] = [la, lb].map((l) => l.slice([0, 0, 0], [1, 6, 32]).dataSync());
  ok(xa.every((x, i) => Math.abs(x - xb[i]) < 1e-5));
  ok(tf.any(tf.notEqual(la, lb)).dataSync()[0]);
  tf.dispose([la, lb]);
  disposeModel(model);
});

Deno.test("model: each dispatch follows its tap, and the block output consumes the combine", () => {
  for (const pos of [1, 2, 3] as const) {
    const steps = serialOrder(gpt(resolveConfig({ ...TINY, variant: "scmoe", pos })).program(true));
    const names = steps.map((s) => s.name);
    const producer = { 1: "blocks.0.mlp", 2: "blocks.0.attn", 3: "embed" }[pos];
    const at = names.indexOf(producer);
    deepEqual(names.slice(at + 1, at + 3), ["blocks.1.moe.gate", "blocks.1.moe.gate"]); // route, gate
    equal(names[at + 3], "blocks.1.moe.gate.dispatch");
    const out = names.indexOf("blocks.1.moe.output");
    ok(
      names.indexOf("blocks.1.moe.gate.combine") < out &&
        names.indexOf("blocks.1.moe.shared") < out,
    );
  }
});

Deno.test("model: a few SGD steps lower the loss of every variant", async () => {
  await setupBackend("cpu");
  const tokens = new Int32Array(4 * 9).map((_, i) => (i * 3) % 11);
  for (const variant of ["dense", "top1", "top2", "se", "dgmoe", "scmoe"] as const) {
    const model = createModel({ ...TINY, variant }, { seed: 1 });
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const { loss, grads } = await trainStep(model, { tokens, rows: 4, cols: 9 });
      losses.push(loss);
      for (const [name, g] of grads) {
        model.params.get(name)!.assign(tf.sub(model.params.get(name)!, tf.mul(g, 0.5)));
      }
      tf.dispose([...grads.values()]);
    }
    ok(losses[3] < losses[0] - 0.1, `${variant}: ${losses}`);
    equal(model.step, 4);
    disposeModel(model);
  }
});
