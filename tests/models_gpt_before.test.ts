/**
 * The GPT built on the public MoE layer is the model it was before the
 * layer existed: for every variant, the same parameters (names, shapes,
 * order: checkpoints written before load unchanged) and, from the same
 * seed and batch, the same losses and gradients. The fixture was written by
 * the code before the change (commit 10aa63c), when the balancing losses of
 * the MoE layers entered the loss as their mean: the test runs that
 * convention (`auxConvention: "mean"`; the default is now `"sum"`).
 */
import { deepEqual, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../models/backend.ts";
import { resolveConfig } from "../models/config.ts";
import { paramSpecs } from "../models/gpt.ts";
import { createModel, disposeModel, evaluate, trainStep } from "../models/model.ts";
import { TINY_MODEL, VARIANT_CASES } from "./helpers/tiny_model.ts";

interface Before {
  params: [string, number[]][];
  loss: number;
  lmLoss: number;
  auxLoss: number;
  evalLoss: number;
  gradSq: Record<string, number>;
}

const BEFORE: Record<string, Before> = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/gpt_before_moe_layer.json", import.meta.url)),
);

const close = (a: number, b: number, tol: number) =>
  Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

for (const [name, cfg] of VARIANT_CASES) {
  Deno.test(`gpt on the MoE layer: ${name} has the parameters, losses and gradients of before`, async () => {
    await setupBackend("cpu");
    const before = BEFORE[name];
    const full = { ...TINY_MODEL, ...cfg, auxConvention: "mean" as const };
    deepEqual(paramSpecs(resolveConfig(full)).map((s) => [s.name, s.shape]), before.params);
    const B = 4, T = 8;
    const tokens = new Int32Array(B * (T + 1)).map((_, i) => (i * 7 + ((i * i) >> 3)) % 32);
    const model = createModel(full, { seed: 3 });
    const res = await trainStep(model, { tokens, rows: B, cols: T + 1 }, { groups: 2 });
    const ev = await evaluate(model, { tokens, rows: B, cols: T + 1 }, { groups: 2 });
    try {
      for (const k of ["loss", "lmLoss", "auxLoss"] as const) {
        ok(close(res[k], before[k], 1e-5), `${k}: ${res[k]} vs ${before[k]}`);
      }
      ok(close(ev.loss, before.evalLoss, 1e-5), `eval loss: ${ev.loss} vs ${before.evalLoss}`);
      deepEqual([...res.grads.keys()], Object.keys(before.gradSq));
      for (const [n, g] of res.grads) {
        const sq = tf.sum(tf.square(g)).dataSync()[0];
        ok(close(sq, before.gradSq[n], 1e-4), `${n}: |g|^2 ${sq} vs ${before.gradSq[n]}`);
      }
    } finally {
      tf.dispose([...res.grads.values()]);
      disposeModel(model);
    }
  });
}
