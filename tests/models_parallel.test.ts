/**
 * The test of record of expert parallelism: for every variant, the loss and the
 * gradients (dense and expert) with N = 1, 2 and 4 ranks equal those of the
 * same model run in one process on the same global batch, and dropping past
 * capacity behaves the same way.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createMemoryGroup } from "../collectives/memory.ts";
import { TINY_MODEL, VARIANT_CASES } from "./helpers/tiny_model.ts";
import { setupBackend } from "../models/backend.ts";
import type { ModelConfig } from "../models/config.ts";
import type { Batch } from "../models/data.ts";
import {
  createModel,
  disposeModel,
  evaluate,
  forward,
  type Model,
  type StepResult,
  trainStep,
} from "../models/model.ts";
import { relErr } from "./helpers/numeric.ts";

const TINY: Partial<ModelConfig> = {
  ...TINY_MODEL,
  capacityFactor: 8, // nothing drops
  evalCapacityFactor: 8,
};

const CASES = VARIANT_CASES;

const B = 4, T = 8;

function globalBatch(seed: number): Batch {
  const tokens = new Int32Array(B * (T + 1)).map((_, i) =>
    (i * 7 + seed * 13 + ((i * i) >> 3)) % 32
  );
  return { tokens, rows: B, cols: T + 1 };
}

function shard(batch: Batch, rank: number, size: number): Batch {
  const rows = batch.rows / size;
  const n = rows * batch.cols;
  return { tokens: batch.tokens.slice(rank * n, (rank + 1) * n), rows, cols: batch.cols };
}

function closeTo(a: number, b: number, what: string) {
  ok(Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), 1e-6), `${what}: ${a} vs ${b}`);
}

function onRanks(cfg: Partial<ModelConfig>, size: number, seed: number) {
  const comms = createMemoryGroup(size);
  const models = comms.map((c) => createModel(cfg, { rank: c.rank, size, seed }));
  return { comms, models };
}

/** Checks N ranks against one process on the same global batch, then lets `inspect` look. */
async function compareStep(
  cfg: Partial<ModelConfig>,
  size: number,
  inspect: (ref: StepResult, got: StepResult[]) => void,
) {
  const seed = 3, batch = globalBatch(size);
  const plain = createModel(cfg, { seed });
  const ref = await trainStep(plain, batch, { groups: size });
  const { comms, models } = onRanks(cfg, size, seed);
  const got = await Promise.all(
    models.map((m, r) => trainStep(m, shard(batch, r, size), { comm: comms[r] })),
  );
  for (const res of got) {
    closeTo(res.loss, ref.loss, "loss");
    closeTo(res.lmLoss, ref.lmLoss, "lm loss");
    closeTo(res.auxLoss, ref.auxLoss, "aux loss");
    deepEqual(res.stats, ref.stats);
  }
  for (const [name, g] of ref.grads) {
    const holders = got.filter((res) => res.grads.has(name));
    const expert = /\.experts\.\d+\./.test(name);
    equal(holders.length, expert ? 1 : size, `${name} held by ${holders.length} ranks`);
    for (const res of holders) {
      const err = relErr(g.dataSync(), res.grads.get(name)!.dataSync());
      ok(err < 1e-4, `${name}: relative error ${err}`);
    }
  }
  try {
    inspect(ref, got);
  } finally {
    release(plain, ref, models, got);
  }
}

function release(plain: Model, ref: StepResult, models: Model[], got: StepResult[]) {
  for (const res of [ref, ...got]) tf.dispose([...res.grads.values()]);
  for (const m of [plain, ...models]) disposeModel(m);
}

for (const [name, cfg] of CASES) {
  Deno.test(`models: ${name} on 1, 2 and 4 ranks equals one process`, async () => {
    await setupBackend("cpu");
    for (const size of [1, 2, 4]) {
      await compareStep({ ...TINY, ...cfg }, size, (ref) => equal(ref.dropRate, 0));
    }
  });
}

Deno.test("models: past capacity, N ranks drop the same tokens as one process", async () => {
  await setupBackend("cpu");
  for (const variant of ["top2", "dgmoe", "scmoe"] as const) {
    for (const size of [2, 4]) {
      await compareStep({ ...TINY, variant, capacityFactor: 0.5 }, size, (ref) => {
        ok(ref.dropRate > 0, `${variant}: something drops`);
        // Per group of B * T / size tokens: at most k * ceil(0.5 * tokens / E) per expert.
        const k = variant === "top2" ? 2 : 1;
        const capacity = k * Math.ceil((0.5 * (B * T) / size) / 4);
        for (const s of ref.stats) {
          ok(s.load.every((l) => l <= capacity * size), `${s.name} load ${s.load}`);
          equal(s.dropped, s.assignments - s.load.reduce((a, b) => a + b, 0));
        }
      });
    }
  }
});

Deno.test("models: with no capacity every token takes the residual path only", async () => {
  await setupBackend("cpu");
  const cfg = { ...TINY, variant: "top1" as const, capacityFactor: 0 };
  await compareStep(cfg, 2, (ref, got) => {
    equal(ref.dropRate, 1);
    for (const res of [ref, ...got]) {
      for (const [name, g] of res.grads) {
        if (/\.experts\./.test(name)) ok(g.dataSync().every((x) => x === 0), name);
      }
    }
  });
});

Deno.test("models: evaluation and logits on 2 ranks equal one process", async () => {
  await setupBackend("cpu");
  const cfg = { ...TINY, variant: "scmoe" as const, pos: 3 as const };
  const batch = globalBatch(5);
  const plain = createModel(cfg, { seed: 4 });
  const ref = await evaluate(plain, batch, { groups: 2 });
  const { comms, models } = onRanks(cfg, 2, 4);
  const got = await Promise.all(
    models.map((m, r) => evaluate(m, shard(batch, r, 2), { comm: comms[r] })),
  );
  for (const res of got) closeTo(res.loss, ref.loss, "eval loss");

  const tokens = new Int32Array(B * T).map((_, i) => (i * 5) % 32);
  const refLogits = await forward(plain, { tokens, batchSize: B, seqLen: T }, { groups: 2 });
  const logits = await Promise.all(
    models.map((m, r) =>
      forward(m, { tokens: tokens.slice(r * 2 * T, (r + 1) * 2 * T), batchSize: 2, seqLen: T }, {
        comm: comms[r],
      })
    ),
  );
  const joined = tf.concat(logits);
  ok(relErr(refLogits.dataSync(), joined.dataSync()) < 1e-5);
  tf.dispose([refLogits, joined, ...logits]);
  for (const m of [plain, ...models]) disposeModel(m);
});

Deno.test("models: a step leaves no tensors behind, locally or on ranks", async () => {
  await setupBackend("cpu");
  const cfg = { ...TINY, variant: "dgmoe" as const };
  const plain = createModel(cfg);
  const { comms, models } = onRanks(cfg, 2, 0);
  const before = tf.memory().numTensors;
  const ref = await trainStep(plain, globalBatch(1));
  const got = await Promise.all(
    models.map((m, r) => trainStep(m, shard(globalBatch(1), r, 2), { comm: comms[r] })),
  );
  const grads = [ref, ...got].reduce((n, res) => n + res.grads.size, 0);
  equal(tf.memory().numTensors, before + grads);
  release(plain, ref, models, got);
});

Deno.test("models: the wasm backend gives the same parallel gradients", async () => {
  await setupBackend("wasm");
  try {
    await compareStep({ ...TINY, variant: "scmoe" }, 2, () => {});
  } finally {
    await setupBackend("cpu");
  }
});
