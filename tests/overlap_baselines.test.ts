/**
 * A variant with nothing to overlap reads (near) nothing hidden, in training
 * and in inference: the scenario benchmark's top-1 (the paper's baseline,
 * not pipelined) on 2 rank Workers over a shaped link, its MoE block's
 * hidden fraction measured as the benchmark measures it (transfer only,
 * `transferFigure`). Before top-1 was pinned to its serial schedule, the
 * default schedule's chunk trial pipelined its inference (8 chunks), and
 * `pcie/top1` read 0.75–0.82 hidden there.
 */
import { ok } from "node:assert/strict";
import { type OverlapCase, runOnRanks, transferFigure } from "../bench/overlap.ts";
import { SCENARIO_VARIANTS } from "../bench/scenarios.ts";
import { SETTLED_AFTER_STEPS } from "../models/scheduler.ts";

const MODEL = { nLayer: 2, moeEvery: 2, nEmbd: 64, nHead: 4, nExperts: 4, blockSize: 32 };

Deno.test("top-1, the paper's baseline: nothing hidden in training or inference", async () => {
  const [name, model, schedule] = SCENARIO_VARIANTS.find(([n]) => n === "top1")!;
  // Past the steps in which a default schedule profiles and trials chunk counts.
  const steps = SETTLED_AFTER_STEPS + 2;
  const cases = [false, true].map((forwardOnly): OverlapCase => ({
    name: `${name}${forwardOnly ? "-infer" : ""}`,
    model: { ...MODEL, ...model },
    schedule,
    steps,
    rows: 4,
    seq: 32,
    traceFrom: SETTLED_AFTER_STEPS,
    forwardOnly,
  }));
  // A slow link: communication well above the (empty) window, where a trial would pipeline.
  const perRank = await runOnRanks(cases, {
    link: { bandwidthBytesPerS: 2e6, latencyS: 2e-4 },
    gradLink: null,
    interleave: true,
  });
  for (const [i, c] of cases.entries()) {
    const results = perRank.map((r) => r[i]);
    const hidden = transferFigure(results, SETTLED_AFTER_STEPS, (f) => f.hiddenFraction);
    const comm = transferFigure(results, SETTLED_AFTER_STEPS, (f) => f.commMs);
    const chunks = results.flatMap((r) => r.reports.flatMap((x) => Object.values(x.chunks)));
    ok(chunks.every((n) => n === 1), `${c.name}: never pipelined (${chunks})`);
    ok(comm > 1, `${c.name}: its all-to-alls took ${comm} ms`);
    ok(hidden < 0.1, `${c.name}: hidden fraction ${hidden} (communication ${comm} ms)`);
  }
});
