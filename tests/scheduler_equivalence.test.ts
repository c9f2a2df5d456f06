/**
 * Scheduling never changes results: for every variant, every slot of the
 * expert computation and pipelined chunks, a scheduled step on 2 ranks
 * gives the outputs and gradients of the serial execution (standard expert
 * parallelism) within 1e-6; and the schedule has the shape of the ScMoE
 * paper's overlapping strategy (arXiv:2404.05019).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createMemoryGroup } from "../collectives/memory.ts";
import { TINY_MODEL, VARIANT_CASES } from "./helpers/tiny_model.ts";
import { setupBackend } from "../models/backend.ts";
import { type ModelConfig, resolveConfig } from "../models/config.ts";
import type { Batch } from "../models/data.ts";
import {
  createModel,
  disposeModel,
  forwardRun,
  type StepResult,
  trainStep,
} from "../models/model.ts";
import { gpt } from "../models/gpt.ts";
import {
  assertDependencies,
  backwardOrder,
  CHUNK_TRIAL_STEPS,
  gateWindows,
  OverlapScheduler,
  pipelineGate,
  type ScheduleOptions,
  scheduleProgram,
  serialOrder,
} from "../models/scheduler.ts";
import { blockFigures, type TimedOp } from "../models/overlap_report.ts";

const TINY: Partial<ModelConfig> = {
  ...TINY_MODEL,
  capacityFactor: 1.5, // some tokens drop: the schedule must not change which
};

const VARIANTS = VARIANT_CASES;

const B = 4, T = 8, SIZE = 2;

function shard(rank: number): Batch {
  const rows = B / SIZE;
  const tokens = new Int32Array(rows * (T + 1)).map((_, i) =>
    (i * 7 + rank * 29 + ((i * i) >> 3)) % 32
  );
  return { tokens, rows, cols: T + 1 };
}

interface Outcome {
  loss: number;
  grads: Map<string, Float32Array>[];
  logits: Float32Array[];
  results: StepResult[];
}

/** One training step and one forward pass on 2 ranks with `schedule`. */
async function run(cfg: Partial<ModelConfig>, schedule: ScheduleOptions): Promise<Outcome> {
  const comms = createMemoryGroup(SIZE);
  const models = comms.map((c) =>
    createModel({ ...TINY, ...cfg }, { rank: c.rank, size: SIZE, seed: 5 })
  );
  try {
    const results = await Promise.all(
      models.map((m, r) =>
        trainStep(m, shard(r), {
          comm: comms[r],
          step: 0,
          scheduler: new OverlapScheduler(schedule),
        })
      ),
    );
    const fwd = await Promise.all(models.map((m, r) => {
      const b = shard(r);
      const tokens = b.tokens.filter((_, i) => i % (T + 1) < T);
      return forwardRun(m, { tokens, batchSize: b.rows, seqLen: T }, {
        comm: comms[r],
        scheduler: new OverlapScheduler(schedule),
      });
    }));
    const logits = fwd.map((f) => f.logits.dataSync() as Float32Array);
    tf.dispose(fwd.map((f) => f.logits));
    const grads = results.map((res) =>
      new Map([...res.grads].map(([n, g]) => [n, g.dataSync() as Float32Array]))
    );
    for (const res of results) tf.dispose([...res.grads.values()]);
    return { loss: results[0].loss, grads, logits, results };
  } finally {
    models.forEach(disposeModel);
  }
}

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

function assertSame(got: Outcome, ref: Outcome, what: string) {
  ok(Math.abs(got.loss - ref.loss) <= 1e-6 * Math.max(1, Math.abs(ref.loss)), `${what}: loss`);
  got.logits.forEach((l, r) => {
    const err = maxRelErr(ref.logits[r], l);
    ok(err <= 1e-6, `${what}: logits of rank ${r}: relative error ${err}`);
  });
  got.grads.forEach((gs, r) => {
    deepEqual([...gs.keys()], [...ref.grads[r].keys()]);
    for (const [n, g] of gs) {
      const err = maxRelErr(ref.grads[r].get(n)!, g);
      ok(err <= 1e-6, `${what}: gradient ${n} of rank ${r}: relative error ${err}`);
    }
  });
}

await setupBackend("cpu");

for (const [name, cfg] of VARIANTS) {
  Deno.test(`scheduler: ${name}: every slot and pipelining equal the serial step`, async () => {
    const serial = await run(cfg, { overlap: false });
    const windows = gateWindows(serialOrder(gpt(resolveConfig({ ...TINY, ...cfg })).program(true)));
    const widest = Math.max(0, ...windows.map((w) => w.ops.length));
    const schedules: ScheduleOptions[] = [
      ...Array.from({ length: widest + 1 }, (_, slot) => ({ slot })),
      { slot: "auto" },
      { slot: 0, backwardSlot: widest },
      { slot: widest, backwardSlot: 0 },
    ];
    if (name !== "dense") schedules.push({ chunks: 2 }, { chunks: 3, slot: 1 });
    for (const schedule of schedules) {
      const got = await run(cfg, schedule);
      assertSame(got, serial, `${name} ${JSON.stringify(schedule)}`);
      for (const res of got.results) {
        const report = res.overlap!;
        equal(report.blocks.length, new Set(windows.map((w) => w.block)).size);
        for (const w of windows) {
          equal(report.chunks[w.gate], schedule.chunks ?? 1, `${w.gate} chunks`);
          const slot = typeof schedule.slot === "number"
            ? schedule.slot
            : Math.ceil(w.ops.length / 2);
          equal(report.slots[w.gate], Math.min(slot, w.ops.length), `${w.gate} slot`);
          const back = typeof schedule.backwardSlot === "number"
            ? Math.min(schedule.backwardSlot, w.ops.length)
            : w.ops.length - report.slots[w.gate];
          equal(report.backwardSlots[w.gate], back, `${w.gate} backward slot`);
        }
      }
    }
  });
}

Deno.test("scheduler: ScMoE Pos-2: dispatch right after the tap, experts in the slot, combine consumed last", () => {
  const cfg = resolveConfig({ ...TINY, variant: "scmoe", pos: 2 });
  const serial = serialOrder(gpt(cfg).program(true));
  const [w] = gateWindows(serial);
  deepEqual(w.ops, ["blocks.0.mlp", "blocks.1.attn", "blocks.1.moe.shared"]);
  const names = scheduleProgram(serial, gateWindows(serial), new Map([[w.gate, 2]])).map((s) =>
    s.name
  );
  const at = (n: string) => names.indexOf(n);
  const g = "blocks.1.moe.gate";
  equal(at(`${g}.dispatch`), at("blocks.0.attn") + 3, "route, gate, dispatch follow the tap A_0");
  ok(at(`${g}.dispatch`) < at("blocks.0.mlp"));
  equal(at(`${g}.experts`), at("blocks.1.attn") + 1, "slot 2: after MLP_0 and Attn_1");
  equal(
    at(`${g}.combine`),
    at(`${g}.experts`) + 1,
    "the combine is issued as soon as the experts ran",
  );
  equal(at("blocks.1.moe.output"), at("blocks.1.moe.shared") + 1, "the combine is consumed last");
});

Deno.test("scheduler: the backward issues each gradient all-to-all as soon as it is complete", () => {
  const cfg = resolveConfig({ ...TINY, variant: "scmoe", pos: 2 });
  const serial = serialOrder(gpt(cfg).program(true));
  const fwd = scheduleProgram(serial, gateWindows(serial), new Map([["blocks.1.moe.gate", 1]]));
  const names = backwardOrder(fwd).map((s) => s.name);
  const at = (n: string) => names.indexOf(n);
  const g = "blocks.1.moe.gate";
  equal(at(`${g}.combine`), at("blocks.1.moe.output") + 1);
  ok(at(`${g}.combine`) < at("blocks.1.moe.shared") && at("blocks.1.attn") < at(`${g}.experts`));
  equal(at(`${g}.dispatch`), at(`${g}.experts`) + 1);
  ok(at(`${g}.dispatch`) < at("blocks.0.mlp") && at("blocks.0.mlp") < at(g));
});

Deno.test("scheduler: the backward runs the experts in their own slot of the reversed window", () => {
  const cfg = resolveConfig({ ...TINY, variant: "scmoe", pos: 2 });
  const g = "blocks.1.moe.gate";
  const serial = serialOrder(gpt(cfg).program(true));
  for (const backwardSlot of [0, 1, 2, 3]) {
    const plan = new OverlapScheduler({ slot: 1, backwardSlot }).plan(serial);
    assertDependencies(plan.steps);
    const names = plan.backward.map((s) => s.name);
    const before = ["blocks.1.moe.shared", "blocks.1.attn", "blocks.0.mlp"]
      .filter((n) => names.indexOf(n) < names.indexOf(`${g}.experts`));
    deepEqual(
      before,
      ["blocks.1.moe.shared", "blocks.1.attn", "blocks.0.mlp"].slice(0, backwardSlot),
    );
    equal(names.indexOf(`${g}.combine`), names.indexOf("blocks.1.moe.output") + 1);
    equal(names.indexOf(`${g}.dispatch`), names.indexOf(`${g}.experts`) + 1);
    equal(plan.slots[g], 1, "the forward keeps its slot");
  }
});

Deno.test("scheduler: the backward slot is planned on the backward's own times", async () => {
  const cfg = resolveConfig({ ...TINY, variant: "scmoe", pos: 2 });
  const g = "blocks.1.moe.gate";
  const [comm] = createMemoryGroup(1);
  const scheduler = new OverlapScheduler({ planner: { warmupSteps: 1 } });
  const { layout } = scheduler.plan(serialOrder(gpt(cfg).program(true)));
  const op = (name: string, kind: TimedOp["kind"], phase: TimedOp["phase"], ms: number) => ({
    name,
    kind,
    phase,
    startMs: 0,
    endMs: ms,
  });
  // Forward: a long dispatch and a short combine want the experts late (slot 3);
  // backward: a long first exchange (the combine's gradient) wants them late too,
  // which in the reversed window is after all three backbone ops (backward slot 3).
  const ops: TimedOp[] = [
    op("blocks.0.mlp", "op", "fwd", 5),
    op("blocks.1.attn", "op", "fwd", 5),
    op("blocks.1.moe.shared", "op", "fwd", 5),
    op(`${g}.dispatch`, "comm", "fwd", 15),
    op(`${g}.experts`, "op", "fwd", 2),
    op(`${g}.combine`, "comm", "fwd", 1),
    op("blocks.0.mlp", "op", "bwd", 10),
    op("blocks.1.attn", "op", "bwd", 10),
    op("blocks.1.moe.shared", "op", "bwd", 10),
    op(`${g}.combine`, "comm", "bwd", 30),
    op(`${g}.experts`, "op", "bwd", 4),
    op(`${g}.dispatch`, "comm", "bwd", 1),
  ];
  ok(layout.blockOf.size > 0);
  const lines = await scheduler.observe(ops, blockFigures(ops, layout), comm, "t");
  const plan = scheduler.plan(serialOrder(gpt(cfg).program(true)));
  equal(plan.slots[g], 3, lines.join("\n"));
  equal(plan.backwardSlots[g], 3, lines.join("\n"));
  ok(lines.some((l) => l.includes("expert backward in slot 3")));
});

/**
 * One step's timed ops of a Pos-2 block whose all-to-alls (30 ms each) are
 * longer than its window (15 ms), so the pipeline model asks for chunks; the
 * block's forward span is `spanMs`.
 */
function longCommStep(g: string, spanMs: number): TimedOp[] {
  const at = (name: string, kind: TimedOp["kind"], startMs: number, endMs: number): TimedOp => ({
    name,
    kind,
    phase: "fwd",
    startMs,
    endMs,
  });
  return [
    at(`${g}.route`, "op", 0, 1),
    at(`${g}.dispatch`, "comm", 1, 31),
    at("blocks.0.mlp", "op", 1, 6),
    at("blocks.1.attn", "op", 6, 11),
    at("blocks.1.moe.shared", "op", 11, 16),
    at(`${g}.experts`, "op", 31, 33),
    at(`${g}.combine`, "comm", 33, 63),
    at("blocks.1.moe.output", "op", spanMs - 1, spanMs),
  ];
}

Deno.test("scheduler: a modelled chunk count stays only if its measured block time beats one chunk", async () => {
  const cfg = resolveConfig({ ...TINY, variant: "scmoe", pos: 2 });
  const g = "blocks.1.moe.gate";
  const serial = serialOrder(gpt(cfg).program(false));
  /**
   * Runs profile and trial on 2 ranks; `spans[r](chunks)` is rank r's block
   * span for a step run with that many chunks. Returns the chunk count each
   * rank plans after the trial, the count the model asked for, and the log.
   */
  const decide = async (spans: ((chunks: number) => number)[]) => {
    const comms = createMemoryGroup(2);
    const schedulers = comms.map(() =>
      new OverlapScheduler({ slot: 3, planner: { warmupSteps: 1 } })
    );
    const lines: string[] = [];
    const step = async () => {
      const plans = schedulers.map((s) => s.plan(serial));
      const got = await Promise.all(
        schedulers.map((s, r) => {
          const ops = longCommStep(g, spans[r](plans[r].chunks[g]));
          return s.observe(ops, blockFigures(ops, plans[r].layout), comms[r], "t");
        }),
      );
      lines.push(...got[0]);
      return plans.map((p) => p.chunks[g]);
    };
    deepEqual(await step(), [1, 1], "profiled with one chunk");
    const [modelled] = await step();
    ok(modelled > 1, lines.join("\n"));
    for (let i = 1; i < 2 * CHUNK_TRIAL_STEPS; i++) await step();
    const after = schedulers.map((s) => s.plan(serial).chunks[g]);
    await Promise.all(comms.map((c) => c.close()));
    return { after, modelled, log: lines.join("\n") };
  };
  const slower = await decide([(c) => (c > 1 ? 80 : 50), (c) => (c > 1 ? 80 : 50)]);
  deepEqual(slower.after, [1, 1], slower.log);
  ok(slower.log.includes(`${slower.modelled} chunk(s) modelled`), slower.log);
  ok(
    slower.log.includes(
      `1 chunk(s): measured block time ${slower.modelled} chunk(s) 80.00 ms, 1 chunk(s) 50.00 ms`,
    ),
    slower.log,
  );
  // The group mean decides, so both ranks pipeline alike: (80 + 10) / 2 < 50.
  const faster = await decide([(c) => (c > 1 ? 80 : 50), (c) => (c > 1 ? 10 : 50)]);
  deepEqual(faster.after, [faster.modelled, faster.modelled], faster.log);
  ok(faster.log.includes(`${faster.modelled} chunk(s): measured block time`), faster.log);
});

Deno.test("scheduler: top2 pipelining keeps a valid order: d0 d1 e0 c0 d2 e1 c1 e2 c2", () => {
  const cfg = resolveConfig({ ...TINY, variant: "top2" });
  const g = "blocks.1.moe.gate";
  const steps = pipelineGate(serialOrder(gpt(cfg).program(true)), g, 3);
  assertDependencies(steps);
  const chain = steps.filter((s) => s.name.startsWith(`${g}.`)).map((s) =>
    s.name.slice(g.length + 1)
  );
  deepEqual(chain, [
    "split",
    "dispatch.c0",
    "dispatch.c1",
    "experts.c0",
    "combine.c0",
    "dispatch.c2",
    "experts.c1",
    "combine.c1",
    "experts.c2",
    "combine.c2",
    "merge",
  ]);
});
