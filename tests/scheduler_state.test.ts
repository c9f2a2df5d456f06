/**
 * The overlap schedule is the caller's: an `OverlapScheduler` held by the
 * caller (or the model's own, `model.schedulers`) shows each gate
 * application's window, slot, chunks, last measured times and decisions;
 * `explainOverlap` prints which compute each exchange overlaps.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createMemoryGroup } from "../collectives/memory.ts";
import { setupBackend } from "../models/backend.ts";
import { resolveConfig } from "../models/config.ts";
import { gpt } from "../models/gpt.ts";
import { createModel, disposeModel, trainStep } from "../models/model.ts";
import { explainOverlap, OverlapScheduler } from "../models/scheduler.ts";
import { TINY_MODEL } from "./helpers/tiny_model.ts";

const G = "blocks.1.moe.gate";

Deno.test("scheduler state: the caller's scheduler learns from its runs, the model's does not", async () => {
  await setupBackend("cpu");
  const cfg = { ...TINY_MODEL, variant: "scmoe" as const, pos: 2 as const };
  const comms = createMemoryGroup(2);
  const models = comms.map((c) => createModel(cfg, { rank: c.rank, size: 2, seed: 1 }));
  const mine = comms.map(() => new OverlapScheduler({ planner: { warmupSteps: 2 } }));
  const tokens = new Int32Array(2 * 9).map((_, i) => (i * 5) % 32);
  try {
    for (let step = 0; step < 3; step++) {
      const results = await Promise.all(
        models.map((m, r) =>
          trainStep(m, { tokens, rows: 2, cols: 9 }, { comm: comms[r], scheduler: mine[r] })
        ),
      );
      for (const res of results) tf.dispose([...res.grads.values()]);
    }
    const [gate] = mine[0].gates;
    equal(gate.gate, G);
    deepEqual(gate.window.ops, ["blocks.0.mlp", "blocks.1.attn", "blocks.1.moe.shared"]);
    ok(gate.forward && gate.forward.backbone.length === 3 && gate.forward.dispatchMs >= 0);
    ok(gate.backward && gate.backward.backbone.length === 3);
    ok(
      gate.decisions.some((d) => d.startsWith(`${G}: expert computation in slot`)),
      gate.decisions.join("\n"),
    );
    ok(gate.phase !== "profiling", "profiled: chunks decided (or on trial)");
    ok(gate.decisions.some((d) => / chunk\(s\)/.test(d)), gate.decisions.join("\n"));
    deepEqual(
      mine[1].gates.map((g) => g.slot),
      mine[0].gates.map((g) => g.slot),
      "ranks plan alike",
    );
    deepEqual(models[0].schedulers.train.gates, [], "the model's own scheduler was not used");
  } finally {
    models.forEach(disposeModel);
  }
});

Deno.test("explainOverlap: ScMoE Pos-2's dispatch overlaps MLP_0 and Attn_1, its combine the shared expert", () => {
  const net = gpt(resolveConfig({ ...TINY_MODEL, variant: "scmoe", pos: 2, nLayer: 2 }));
  const text = explainOverlap(net, new OverlapScheduler({ slot: 2 }));
  deepEqual(text.split("\n").map((l) => l.trim().replace(/ +/g, " ")), [
    `${G}: window blocks.0.mlp, blocks.1.attn, blocks.1.moe.shared; slot 2, backward slot 1, 1 chunk(s)`,
    `forward ${G}.dispatch overlaps blocks.0.mlp, blocks.1.attn`,
    `forward ${G}.combine overlaps blocks.1.moe.shared`,
    `backward ${G}.combine overlaps blocks.1.moe.shared`,
    `backward ${G}.dispatch overlaps blocks.1.attn, blocks.0.mlp`,
  ]);
  const top2 = gpt(resolveConfig({ ...TINY_MODEL, variant: "top2", nLayer: 2 }));
  ok(/dispatch +overlaps nothing/.test(explainOverlap(top2)), "top-2 has no window to hide in");
  const serial = explainOverlap(net, new OverlapScheduler({ overlap: false }));
  ok(serial.includes("no overlap") && !/overlaps blocks/.test(serial), serial);
  const piped = explainOverlap(top2, new OverlapScheduler({ chunks: 2 }));
  ok(
    /forward +blocks\.1\.moe\.gate\.dispatch\.c1 +overlaps blocks\.1\.moe\.gate\.experts\.c0/.test(
      piped,
    ),
    piped,
  );
});
