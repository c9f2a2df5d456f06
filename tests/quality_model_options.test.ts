/**
 * The model options of the quality work, against independent references:
 * the balancing-loss conventions against hand-computed losses, DGMoE-Share's
 * parameters counted by hand and its gradients against an unshared model
 * whose two MoE modules hold the same values (the shared gradient must be
 * their sum), on 2 ranks as in one process; and the pairing of the quality
 * benchmark's seeds: every variant starts its common parameters from the
 * same values and trains on the same batches.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../models/backend.ts";
import { resolveConfig } from "../models/config.ts";
import { paramSpecs } from "../models/gpt.ts";
import { createModel, disposeModel, trainStep } from "../models/model.ts";
import { createMemoryGroup } from "../collectives/memory.ts";
import { lossStep, type RunContext } from "../models/steps.ts";
import { openData } from "../training/data_source.ts";
import { QUALITY_CASES } from "../bench/quality.ts";
import { parseTrainArgs } from "../cli/train.ts";
import { modelConfigOf, resolveTrainConfig } from "../training/config.ts";
import { TINY_MODEL } from "./helpers/tiny_model.ts";

const B = 4, T = 8;
const tokens = new Int32Array(B * (T + 1)).map((_, i) => (i * 7 + ((i * i) >> 3)) % 32);
const batch = { tokens, rows: B, cols: T + 1 };

function ctxOf(targets: Int32Array, batchSize: number, seqLen: number): RunContext {
  return {
    tokens: targets,
    targets,
    batchSize,
    seqLen,
    training: true,
    groups: 1,
    rank: 0,
    size: 1,
    noise: () => null,
    routes: new Map(),
    layouts: new Map(),
  };
}

Deno.test("lossStep: sum weights every layer, mean weights their mean (hand-computed)", async () => {
  await setupBackend("cpu");
  const V = 4;
  // Uniform logits: the cross-entropy is ln 4 whatever the targets.
  const logits = tf.zeros([1, 2, V]);
  const ctx = ctxOf(Int32Array.of(1, 3), 1, 2);
  const aux = [tf.scalar(1.2), tf.scalar(0.8), tf.scalar(1.0)];
  const run = (layers: (string | string[])[], convention?: "sum" | "mean") => {
    const step = lossStep({ aux: layers, auxWeight: 0.01, auxConvention: convention });
    const [loss, lm, auxLoss] = step.run([logits, ...aux.slice(0, step.inputs.length - 1)], (
      n,
    ) => {
      throw new Error(`no parameter ${n}`);
    }, ctx);
    return [loss, lm, auxLoss].map((t) => t.dataSync()[0]);
  };
  const close = (a: number, b: number) => ok(Math.abs(a - b) < 1e-6, `${a} vs ${b}`);
  const ln4 = Math.log(4);
  // Three layers of one gate use each.
  let [loss, lm, auxLoss] = run(["a", "b", "c"]);
  close(lm, ln4);
  close(auxLoss, 1.0); // (1.2 + 0.8 + 1.0) / 3, whatever the convention
  close(loss, ln4 + 0.01 * 3.0); // the default, sum: 0.01 * (1.2 + 0.8 + 1.0)
  [loss] = run(["a", "b", "c"], "mean");
  close(loss, ln4 + 0.01 * 1.0);
  // A DGMoE layer (two uses, averaged within the layer) and a one-use layer.
  [loss, , auxLoss] = run([["a", "b"], "c"], "sum");
  close(loss, ln4 + 0.01 * ((1.2 + 0.8) / 2 + 1.0));
  close(auxLoss, 1.0);
  [loss] = run([["a", "b"], ["c"]], "mean");
  close(loss, ln4 + 0.01 * 1.0);
  tf.dispose([logits, ...aux]);
});

Deno.test("GPT: the sum convention adds auxWeight * aux_loss * (layers - 1) to the mean's loss", async () => {
  await setupBackend("cpu");
  // top-2 in blocks 1 and 3: sum = w (a1 + a2), mean = w (a1 + a2) / 2, aux_loss = (a1 + a2) / 2.
  const results = [];
  for (const auxConvention of ["sum", "mean"] as const) {
    const model = createModel({ ...TINY_MODEL, variant: "top2", auxConvention }, { seed: 5 });
    const r = await trainStep(model, batch, { groups: 2 });
    tf.dispose([...r.grads.values()]);
    disposeModel(model);
    results.push(r);
  }
  const [sum, mean] = results;
  ok(Math.abs(sum.lmLoss - mean.lmLoss) < 1e-7, "same model, same language-model loss");
  ok(Math.abs(sum.auxLoss - mean.auxLoss) < 1e-7);
  const expected = 0.01 * mean.auxLoss; // w * (a1 + a2) - w * (a1 + a2) / 2
  ok(
    Math.abs(sum.loss - mean.loss - expected) < 1e-6,
    `${sum.loss} - ${mean.loss} vs ${expected}`,
  );
  equal(resolveConfig().auxConvention, "sum", "the paper's reading is the default");
});

Deno.test("DGMoE-Share: one gate and expert set for both MoE blocks, counted by hand", () => {
  const own = paramSpecs(resolveConfig({ ...TINY_MODEL, variant: "dgmoe" }));
  const shared = paramSpecs(resolveConfig({ ...TINY_MODEL, variant: "dgmoe", moeShare: 2 }));
  const count = (specs: typeof own) =>
    specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  // C = 16, hidden 32, E = 4: an expert 16*32 + 32 + 32*16 + 16 = 1072; a gate 2 * 16 * 4 = 128.
  equal(count(own) - count(shared), 4 * 1072 + 128);
  const names = new Set(shared.map((s) => s.name));
  equal(names.size, shared.length, "every parameter listed once");
  for (
    const n of ["moe.0.gate.wg", "moe.0.gate.wn", "moe.0.experts.3.w2", "blocks.3.moe.ln_tap.g"]
  ) {
    ok(names.has(n), n);
  }
  ok(![...names].some((n) => /^blocks\.\d\.moe\.(gate|experts)/.test(n)));
  // Each block keeps its own norms.
  ok(names.has("blocks.1.ln2.g") && names.has("blocks.3.ln2.g"));
});

Deno.test("DGMoE-Share: the shared module's gradient is the sum of both blocks', on 2 ranks too", async () => {
  await setupBackend("cpu");
  const cfg = { ...TINY_MODEL, variant: "dgmoe" as const, capacityFactor: 8 };
  const seed = 2;
  const shared = createModel({ ...cfg, moeShare: 2 }, { seed });
  // An unshared model whose two modules both hold the shared module's values.
  const twin = createModel(cfg, { seed });
  for (const [name, v] of twin.params) {
    const from = name.replace(/^blocks\.[13]\.moe\.(gate|experts)/, "moe.0.$1");
    v.assign(shared.params.get(from)!);
  }
  const a = await trainStep(shared, batch, { groups: 2 });
  const b = await trainStep(twin, batch, { groups: 2 });
  const close = (x: ArrayLike<number>, y: ArrayLike<number>, what: string) => {
    let num = 0, den = 0;
    for (let i = 0; i < x.length; i++) {
      num += (x[i] - y[i]) ** 2;
      den += y[i] ** 2;
    }
    ok(Math.sqrt(num / Math.max(den, 1e-30)) < 1e-5, `${what}: relative error`);
  };
  ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
  deepEqual(a.stats, b.stats);
  for (const [name, g] of a.grads) {
    const m = /^moe\.0\.(.*)$/.exec(name);
    const expected = m
      ? tf.add(b.grads.get(`blocks.1.moe.${m[1]}`)!, b.grads.get(`blocks.3.moe.${m[1]}`)!)
      : b.grads.get(name)!;
    close(g.dataSync(), expected.dataSync(), name);
  }
  // Two ranks, each with half the experts and half the batch, equal the one process.
  const comms = createMemoryGroup(2);
  const ranks = comms.map((c) =>
    createModel({ ...cfg, moeShare: 2 }, { rank: c.rank, size: 2, seed })
  );
  const half = (r: number) => ({
    tokens: tokens.slice(r * 2 * (T + 1), (r + 1) * 2 * (T + 1)),
    rows: 2,
    cols: T + 1,
  });
  const got = await Promise.all(ranks.map((m, r) => trainStep(m, half(r), { comm: comms[r] })));
  for (const res of got) {
    ok(Math.abs(res.loss - a.loss) < 1e-5);
    for (const [name, g] of res.grads) close(g.dataSync(), a.grads.get(name)!.dataSync(), name);
  }
  ok(got[0].grads.has("moe.0.experts.0.w1") && !got[0].grads.has("moe.0.experts.2.w1"));
  for (const r of [a, b, ...got]) tf.dispose([...r.grads.values()]);
  for (const m of [shared, twin, ...ranks]) disposeModel(m);
});

Deno.test("quality bench pairing: each seed gives every variant the same initial shared parameters and batches", async () => {
  await setupBackend("cpu");
  for (const seed of [1, 2]) {
    const values = new Map<string, { variant: string; data: Float32Array }>();
    let shared = 0;
    for (const [name, flags] of Object.entries(QUALITY_CASES)) {
      const cfg = modelConfigOf(
        resolveTrainConfig(parseTrainArgs([...flags, "--seed", `${seed}`]).settings),
      );
      const model = createModel(cfg, { seed });
      for (const [param, v] of model.params) {
        const data = v.dataSync() as Float32Array;
        const seen = values.get(param);
        if (!seen) values.set(param, { variant: name, data: data.slice() });
        else {
          shared++;
          deepEqual(data, seen.data, `${param}: ${name} vs ${seen.variant}, seed ${seed}`);
        }
      }
      disposeModel(model);
    }
    ok(shared > 100, `${shared} parameters shared across variants`);
    // Different seeds start differently.
    const other = createModel(resolveConfig({ variant: "top2" }), { seed: seed + 10 });
    ok(
      !tf.util.arraysEqual(other.params.get("wte")!.dataSync(), values.get("wte")!.data),
      "another seed, other values",
    );
    disposeModel(other);
  }
  // The data order is the seed's, whatever the variant: the bench passes one data spec per seed.
  const spec = { kind: "brown" as const, heldoutCategories: ["h", "r"], splitSeed: 1 };
  const one = await openData(spec, { seed: 3, seq: 64 });
  const two = await openData(spec, { seed: 3, seq: 64 });
  deepEqual(one.train.batch(17, { batch: 16 }), two.train.batch(17, { batch: 16 }));
});
