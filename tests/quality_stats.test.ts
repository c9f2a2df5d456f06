/**
 * The numbers the quality benchmark and the training metrics rest on,
 * against independent references: Student's t quantiles against the
 * printed table, a paired 95% interval worked by hand, load CVs counted by
 * hand, collapse and spike detection on constructed histories, the routing
 * summary summed by hand.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  coefficientOfVariation,
  mean,
  sampleStd,
  studentTQuantile,
  tInterval,
} from "../models/stats.ts";
import { CollapseWatch, gateHealth, SpikeWatch } from "../training/health.ts";
import { trainRouting } from "../training/train.ts";

const close = (a: number, b: number, tol: number, what = "") =>
  ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

Deno.test("t quantiles: the printed table of t_{0.975} and t_{0.95}", () => {
  // Fisher and Yates's table, two-sided 95% and 90%.
  const table: [number, number, number][] = [
    [1, 12.706, 6.314],
    [2, 4.303, 2.920],
    [3, 3.182, 2.353],
    [4, 2.776, 2.132],
    [5, 2.571, 2.015],
    [9, 2.262, 1.833],
    [10, 2.228, 1.812],
    [20, 2.086, 1.725],
    [30, 2.042, 1.697],
  ];
  for (const [df, t975, t95] of table) {
    close(studentTQuantile(0.975, df), t975, 5e-4, `df ${df} 0.975`);
    close(studentTQuantile(0.95, df), t95, 5e-4, `df ${df} 0.95`);
  }
  close(studentTQuantile(0.975, 1e6), 1.95996, 1e-4, "normal limit");
  close(studentTQuantile(0.025, 2), -4.303, 5e-4, "lower tail");
  throws(() => studentTQuantile(1, 3), RangeError);
});

Deno.test("paired 95% interval over three seeds, worked by hand", () => {
  // Variant minus top-2 on seeds 1..3.
  const variant = [2.61, 2.75, 2.66], top2 = [2.51, 2.45, 2.46];
  const diffs = variant.map((v, i) => v - top2[i]); // 0.10, 0.30, 0.20
  // mean 0.2; s = sqrt((0.01 + 0.01 + 0) / 2) = 0.1; s / sqrt(3) = 0.057735;
  // t_{0.975, 2} = 4.3027; half width 0.248414.
  const ci = tInterval(diffs);
  close(ci.mean, 0.2, 1e-12);
  close(sampleStd(diffs), 0.1, 1e-12);
  close(ci.low, 0.2 - 0.248414, 1e-5);
  close(ci.high, 0.2 + 0.248414, 1e-5);
  equal(ci.n, 3);
  // One value: no interval.
  ok(Number.isNaN(tInterval([0.4]).low));
  close(mean([1, 2, 3, 4]), 2.5, 0);
  equal(sampleStd([7]), 0);
});

Deno.test("load CV: counted by hand", () => {
  equal(coefficientOfVariation([256, 256, 0, 0]), 1); // mean 128, deviations all 128
  equal(coefficientOfVariation([3, 1]), 0.5); // mean 2, deviations 1
  equal(coefficientOfVariation([5, 5, 5, 5]), 0);
  close(coefficientOfVariation([8, 0, 0, 0]), Math.sqrt(3), 1e-12); // everything on one expert
  equal(coefficientOfVariation([0, 0]), 0);
  const g = gateHealth({
    name: "blocks.1.moe.gate",
    load: [400, 256, 87, 0],
    demand: [681, 256, 87, 0],
    dropped: 281,
    assignments: 1024,
  });
  close(g.drop_rate, 281 / 1024, 1e-12);
  // demand mean 256; deviations 425, 0, -169, -256: sqrt((180625 + 28561 + 65536) / 4) / 256.
  close(g.load_cv, Math.sqrt((180625 + 0 + 28561 + 65536) / 4) / 256, 1e-12);
});

Deno.test("collapse: an expert without a token for N steps is flagged once per stretch", () => {
  const watch = new CollapseWatch({ steps: 3 });
  // Expert 2 of gate g gets nothing in steps 3..7 and 10..11; expert 0 of h in 2..5.
  const history: Record<number, [number[], number[]]> = {};
  for (let step = 1; step <= 12; step++) {
    const g = [5, 5, (step >= 3 && step <= 7) || step === 10 || step === 11 ? 0 : 5, 5];
    const h = [step >= 2 && step <= 5 ? 0 : 4, 4];
    history[step] = [g, h];
  }
  const flagged: [number, string, number, number][] = [];
  for (let step = 1; step <= 12; step++) {
    const [g, h] = history[step];
    for (const c of watch.observe(step, [{ name: "g", demand: g }, { name: "h", demand: h }])) {
      flagged.push([step, c.gate, c.expert, c.from]);
    }
    if (step === 6) {
      deepEqual(watch.ongoing.map((c) => [c.gate, c.expert, c.from, c.to]), [["g", 2, 3, 6]]);
    }
  }
  // g#2 reaches 3 empty steps at step 5, h#0 at step 4; the stretch 10..11 is too short.
  deepEqual(flagged, [[4, "h", 0, 2], [5, "g", 2, 3]]);
  deepEqual(watch.collapses.map((c) => [c.gate, c.expert, c.from, c.to]), [
    ["h", 0, 2, 5],
    ["g", 2, 3, 7],
  ]);
  deepEqual(watch.ongoing, []);
  throws(() => new CollapseWatch({ steps: 0 }), RangeError);
});

Deno.test("spikes: a gradient norm 10x the recent median, or a loss 1 nat above it", () => {
  const watch = new SpikeWatch({ window: 20, minSteps: 5 });
  // The seed-1 run: losses falling, norms about 1, step 12 at norm 161 and loss 5.2.
  const losses = [5.5, 5.2, 5.0, 4.8, 4.5, 4.3, 4.1, 3.9, 3.8, 3.7, 3.65, 5.2, 3.6, 3.55];
  const norms = [4, 2.1, 1.9, 1.9, 1.8, 1.7, 1.6, 1.5, 1.3, 1.3, 1.1, 161, 1.0, 0.9];
  const found = losses.map((l, i) => watch.observe(i + 1, l, norms[i])).filter((s) => s);
  equal(found.length, 1);
  const s = found[0]!;
  equal(s.step, 12);
  equal(s.reason, "grad_norm+loss");
  // Median loss of steps 7..11: 3.8; median norm of the 11 steps before: 1.7.
  close(s.medianLoss, 3.8, 1e-12);
  close(s.medianGradNorm, 1.7, 1e-12);
  // A norm spike alone (the step 22: norm 46, loss normal); NaN steps are ignored.
  equal(watch.observe(15, NaN, NaN), null);
  const alone = watch.observe(16, 3.5, 46);
  equal(alone?.reason, "grad_norm");
  // Too early: the first steps are never spikes.
  const fresh = new SpikeWatch();
  equal(fresh.observe(1, 5.5, 4), null);
  equal(fresh.observe(2, 9.0, 400), null);
  equal(watch.spikes.length, 2);
});

Deno.test("routing summary: demand and drops summed over the steps kept", () => {
  const step = (d: number[], dropped: number) => [{
    name: "g",
    load: d,
    demand: d,
    dropped,
    assignments: 100,
  }];
  const [g] = trainRouting([step([40, 30, 20, 10], 5), step([10, 20, 30, 40], 15)]);
  deepEqual(g.demand, [50, 50, 50, 50]);
  equal(g.load_cv, 0);
  equal(g.drop_rate, 20 / 200);
});
