/**
 * The dense-gradient all-reduce goes bucket by bucket during the backward
 * (DDP style) and sums exactly what one all-reduce of every dense gradient
 * sums: the gradients equal those of one process (tested for every variant
 * in `models_parallel.test.ts`).
 */
import { deepEqual, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createMemoryGroup } from "../collectives/memory.ts";
import { setupBackend } from "../models/backend.ts";
import { bucketOf, GradientBuckets } from "../models/grad_sync.ts";
import { createModel, disposeModel, trainStep } from "../models/model.ts";
import { TINY_MODEL } from "./helpers/tiny_model.ts";

await setupBackend("cpu");

Deno.test("grad sync: buckets per block (attention, shared expert, the rest), the others in the embedding's", () => {
  deepEqual(
    [
      "wte",
      "blocks.3.moe.shared.w1",
      "blocks.3.moe.gate.wg",
      "blocks.3.moe.ln_tap.g",
      "blocks.0.ln1.g",
      "blocks.0.attn.wqkv",
      "blocks.0.ln2.g",
      "blocks.0.mlp.w1",
      "blocks.12.attn.bo",
      "lnf.g",
    ].map(bucketOf),
    [
      "embed",
      "blocks.3.shared",
      "blocks.3",
      "blocks.3",
      "blocks.0.attn",
      "blocks.0.attn",
      "blocks.0",
      "blocks.0",
      "blocks.12.attn",
      "embed",
    ],
  );
});

Deno.test("grad sync: a bucket is issued once complete, the others at the end; sums over ranks", async () => {
  const comms = createMemoryGroup(2);
  const names = ["wte", "blocks.0.a", "blocks.0.b"];
  const out = await Promise.all(comms.map(async (comm) => {
    const issued: number[] = [];
    const spy = Object.assign(Object.create(comm), {
      allreduce: (data: Float32Array, op: "sum", opts: object) => {
        issued.push(data.length);
        return comm.allreduce(data, op, opts);
      },
    });
    const grads = new Map(names.map((n, j) => [n, tf.fill([2], j + 1 + comm.rank * 10)]));
    const buckets = new GradientBuckets(names, spy, "t", []);
    buckets.ready("blocks.0.a", grads.get("blocks.0.a")!);
    await new Promise((r) => setTimeout(r, 0));
    deepEqual(issued, [], "half a bucket waits");
    buckets.ready("blocks.0.b", grads.get("blocks.0.b")!);
    await new Promise((r) => setTimeout(r, 0));
    deepEqual(issued, [4], "a complete bucket goes at once");
    await buckets.finish(grads);
    deepEqual(issued, [4, 2], "the rest goes at the end");
    const sums = names.map((n) => Array.from(grads.get(n)!.dataSync()));
    tf.dispose([...grads.values()]);
    return sums;
  }));
  for (const sums of out) deepEqual(sums, [[12, 12], [14, 14], [16, 16]]);
});

Deno.test("grad sync: a training step issues the block buckets before its backward ends", async () => {
  const comms = createMemoryGroup(2);
  const models = comms.map((c) =>
    createModel({ ...TINY_MODEL, variant: "scmoe", pos: 2 }, { rank: c.rank, size: 2 })
  );
  const tokens = new Int32Array(2 * 9).map((_, i) => (i * 5) % 32);
  try {
    const results = await Promise.all(
      models.map((m, r) =>
        trainStep(m, { tokens, rows: 2, cols: 9 }, { comm: comms[r], trace: true })
      ),
    );
    for (const res of results) {
      tf.dispose([...res.grads.values()]);
      const ops = res.overlap!.ops!;
      const lastBackward = Math.max(
        ...ops.filter((o) => o.kind === "op" && o.phase === "bwd").map((o) => o.endMs),
      );
      const early = ops.filter((o) =>
        o.kind === "comm" && o.name.startsWith("grads.allreduce.blocks.") &&
        o.startMs < lastBackward
      );
      ok(early.length > 0, "some block's all-reduce is in flight during the backward");
      // ScMoE's gate finishes its backward after the preceding block's MLP: the
      // shared expert's bucket goes ahead of it, not with it.
      const start = (name: string) =>
        ops.find((o) => o.kind === "comm" && o.name === name)?.startMs;
      const shared = ops.filter((o) => o.kind === "comm" && o.name.endsWith(".shared"));
      ok(shared.length > 0, "the shared experts have buckets of their own");
      for (const o of shared) {
        const block = o.name.replace(/^grads\.allreduce\.|\.shared$/g, "");
        const mlp = ops.find((p) =>
          p.kind === "op" && p.phase === "bwd" &&
          p.name === `blocks.${+block.split(".")[1] - 1}.mlp`
        );
        ok(
          mlp && o.startMs <= mlp.startMs,
          `${o.name} is issued before the preceding MLP's backward`,
        );
        ok(
          o.startMs < start(`grads.allreduce.${block}`)!,
          `${o.name} goes before ${block}'s bucket`,
        );
      }
    }
  } finally {
    models.forEach(disposeModel);
  }
});
