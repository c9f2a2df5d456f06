/**
 * A short training run records the routing health of every gate use
 * (demand, load CV, drops) in training and at each validation, the held-out
 * text's loss, and the routing summary, spikes and collapses in
 * summary.json; each figure is recomputed here from the raw counts.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { train } from "../training/train.ts";
import { coefficientOfVariation } from "../models/stats.ts";

Deno.test("train: routing health per step and per validation, held-out loss, summary", async () => {
  const out = await Deno.makeTempDir({ prefix: "scmoe-health-" });
  try {
    const summary = await train({
      variant: "top2",
      steps: 6,
      batch: 4,
      seq: 16,
      ranks: 2,
      evalEvery: 3,
      data: { kind: "brown", heldoutCategories: ["r"], splitSeed: 1 },
      out: `${out}/run`,
    }, { checkpoints: false, verbose: false });
    const lines = (await Deno.readTextFile(`${out}/run/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    equal(lines.length, 6);
    for (const line of lines) {
      deepEqual(line.gates.map((g: { name: string }) => g.name), [
        "blocks.1.moe.gate",
        "blocks.3.moe.gate",
      ]);
      for (const g of line.gates) {
        // 4 x 16 tokens, 2 choices each, over both ranks.
        equal(g.demand.reduce((a: number, b: number) => a + b, 0), 128);
        ok(Math.abs(g.load_cv - coefficientOfVariation(g.demand)) < 1e-12);
        ok(g.drop_rate >= 0 && g.drop_rate <= 1);
      }
      const cv = (line.gates[0].load_cv + line.gates[1].load_cv) / 2;
      ok(Math.abs(line.load_cv - cv) < 1e-12);
    }
    for (const i of [2, 5]) {
      const v = lines[i];
      ok(Number.isFinite(v.val_loss));
      // 8 validation batches of 4 x 16 tokens, 2 choices each.
      for (const g of v.val_gates) equal(g.demand.reduce((a: number, b: number) => a + b, 0), 1024);
      const drop = (v.val_gates[0].drop_rate + v.val_gates[1].drop_rate) / 2;
      ok(Math.abs(v.val_drop_rate - drop) < 1e-12);
      // Experts no validation token chose are listed (and warned of), from the raw counts.
      const idle = v.val_gates.flatMap((g: { name: string; demand: number[] }) =>
        g.demand.flatMap((n, expert) => n === 0 ? [{ gate: g.name, expert }] : [])
      );
      deepEqual(v.val_idle ?? [], idle);
    }
    // So early, the gates leave some experts without a validation token (not a vacuous check).
    ok([2, 5].some((i) => lines[i].val_idle?.length > 0));
    equal(lines[2].heldout_loss, undefined);
    ok(Number.isFinite(lines[5].heldout_loss) && lines[5].heldout_loss > 0);
    equal(summary.heldoutLoss, lines[5].heldout_loss);
    const saved = JSON.parse(await Deno.readTextFile(`${out}/run/summary.json`));
    equal(saved.heldout_loss, summary.heldoutLoss);
    deepEqual(saved.routing.eval, lines[5].val_gates);
    // The training side sums the last quarter of the steps (2 of 6).
    const demand = lines[4].gates[0].demand.map((n: number, e: number) =>
      n + lines[5].gates[0].demand[e]
    );
    deepEqual(saved.routing.train[0].demand, demand);
    deepEqual(saved.spikes, summary.spikes);
    deepEqual(saved.collapses, []);
    equal(saved.config.auxConvention, "sum");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
