/**
 * `deno task bench quality` without training: its plan pairs the seeds
 * (runs of a seed differ in their variant flags only), and its analysis of
 * constructed runs gives the hand-worked means, spreads, paired intervals,
 * rankings, routing evolution and claim verdicts.
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  caseFigures,
  checkClaims,
  type PlannedRun,
  plateauFit,
  QUALITY_CASES,
  qualityMarkdown,
  qualityPlan,
  qualityRows,
  qualitySettings,
  routingEvolution,
  type RunResult,
  summarizeQuality,
} from "../bench/quality.ts";
import { QUALITY_COMMAND } from "../bench/commands.ts";
import { parseCommand, UsageError } from "../cli/flags.ts";
import { parseTrainArgs } from "../cli/train.ts";

const settingsOf = (args: string[]) =>
  qualitySettings(parseCommand(QUALITY_COMMAND, args), new Date("2025-01-02T03:04:05Z"));

Deno.test("quality plan: every seed's runs differ only in the variant's flags", () => {
  const s = settingsOf([]);
  equal(s.seeds, 3);
  equal(s.steps, 300);
  equal(s.otherSeeds, 1);
  equal(s.convention, "sum");
  equal(s.runs, "runs/quality-20250102T030405");
  const plan = qualityPlan(s);
  // 9 variants x 3 seeds, then the 8 MoE variants x 1 seed under "mean".
  equal(plan.length, 9 * 3 + 8 * 1);
  const strip = (r: PlannedRun) => {
    const rest = r.args.slice(QUALITY_CASES[r.case].length);
    const out = rest.indexOf("--out");
    return [...rest.slice(0, out), ...rest.slice(out + 2)];
  };
  for (const seed of [1, 2, 3]) {
    for (const convention of seed === 1 ? ["sum", "mean"] : ["sum"]) {
      const runs = plan.filter((r) => r.seed === seed && r.convention === convention);
      ok(runs.length >= 8);
      for (const r of runs) deepEqual(strip(r), strip(runs[0]), `${r.case} seed ${seed}`);
      const settings = parseTrainArgs(runs[0].args).settings;
      equal(settings.seed, seed);
      equal(settings.auxConvention, convention);
      deepEqual(settings.data, { kind: "brown", heldoutCategories: ["h", "r"], splitSeed: 1 });
      equal(settings.ranks, 1);
    }
  }
  ok(!plan.some((r) => r.case === "dense" && r.convention === "mean"));
  equal(new Set(plan.map((r) => r.out)).size, plan.length, "every run its own folder");
  const quick = settingsOf(["--quick", "--other-seeds", "0", "--cases", "se,top1"]);
  deepEqual(quick.cases, ["top1", "top2", "se"]);
  equal(qualityPlan(quick).length, 3 * 2);
  throws(() => settingsOf(["--cases", "top3"]), UsageError);
  throws(() => settingsOf(["--seeds", "1"]), UsageError);
  throws(() => settingsOf(["--other-seeds", "4"]), UsageError);
  throws(() => settingsOf(["--aux-convention", "max"]), UsageError);
});

function run(name: string, seed: number, valLoss: number, extra: Partial<RunResult> = {}) {
  return {
    case: name,
    seed,
    convention: "sum" as const,
    valLoss,
    heldoutLoss: valLoss + 0.1,
    stepMs: 500,
    wallS: 80,
    spikes: [],
    collapses: [],
    gates: {},
    ...extra,
  };
}

Deno.test("quality analysis: means, spreads, paired intervals and ranks worked by hand", () => {
  const results: RunResult[] = [
    run("top2", 1, 2.51),
    run("top2", 2, 2.45),
    run("top2", 3, 2.46),
    run("se", 1, 2.61),
    run("se", 2, 2.75),
    run("se", 3, 2.66),
    run("top1", 1, 2.50),
    run("top1", 2, 2.44),
    run("top1", 3, 2.45),
  ];
  const [top1, top2, se] = caseFigures(results, ["top1", "top2", "se"]);
  // se − top2 per seed: 0.10, 0.30, 0.20: mean 0.2, interval ±4.3027 * 0.1 / sqrt(3).
  ok(Math.abs(se.delta!.mean - 0.2) < 1e-12);
  ok(Math.abs(se.delta!.low - (0.2 - 0.248414)) < 1e-5);
  ok(Math.abs(se.delta!.high - (0.2 + 0.248414)) < 1e-5);
  // top1 − top2: -0.01 every seed: a zero-width interval.
  ok(Math.abs(top1.delta!.mean + 0.01) < 1e-12 && Math.abs(top1.delta!.high + 0.01) < 1e-9);
  equal(top2.delta, null);
  // se: mean 2.6733, sd sqrt(((−0.0633)² + 0.0767² + (−0.0133)²) / 2).
  ok(Math.abs(se.valLoss.mean - 8.02 / 3) < 1e-12);
  const m = 8.02 / 3;
  const sd = Math.sqrt(((2.61 - m) ** 2 + (2.75 - m) ** 2 + (2.66 - m) ** 2) / 2);
  ok(Math.abs(se.valLoss.std - sd) < 1e-12);
  deepEqual([top1.rank, top2.rank, se.rank], [1, 2, 3]);
  // A seed without top-2 pairs with nothing.
  const [only] = caseFigures([run("top2", 1, 2.5), run("se", 2, 2.6)], ["se", "top2"]);
  equal(only.delta, null);
});

Deno.test("quality claims: verdicts from the intervals", () => {
  const seeds = (name: string, base: number, offsets: number[]) =>
    offsets.map((o, i) => run(name, i + 1, base + o));
  const top2 = [0, -0.05, 0.03];
  const results: RunResult[] = [
    ...seeds("top2", 2.5, top2),
    // ScMoE 0.01 below top-2 on every seed, give or take 0.001: holds.
    ...seeds("scmoe-pos2", 2.49, [0, -0.049, 0.029]),
    // SE 0.001 above, within the margin: close; DGMoE 0.05 above every seed: not close.
    ...seeds("se", 2.501, [0, -0.05, 0.031]),
    ...seeds("dgmoe", 2.55, [0, -0.05, 0.03]),
    // top-1 worse than every other MoE variant by at least 0.05.
    ...seeds("top1", 2.62, [0, -0.05, 0.03]),
    // DGMoE-Share 0.005 above DGMoE: a small loss.
    ...seeds("dgmoe-share", 2.555, [0, -0.05, 0.03]),
  ];
  const params = { dgmoe: 400000, "dgmoe-share": 300000 };
  const cases = ["top1", "top2", "se", "dgmoe", "scmoe-pos2", "dgmoe-share"];
  const claims = checkClaims(results, [], params, cases);
  deepEqual(claims.map((c) => c.verdict), ["holds", "does not hold", "holds", "holds"]);
  ok(claims[0].detail.startsWith("scmoe-pos2 − top2: -0.0100 ["));
  ok(claims[3].detail.includes("300000 parameters against 400000 (75%)"));
  // top-1 better than top-2 by 0.05 on every seed: the claim fails.
  const better = [...results.filter((r) => r.case !== "top1"), ...seeds("top1", 2.45, top2)];
  const c = checkClaims(better, [], params, cases).find((x) => x.claim.startsWith("Top-1"))!;
  equal(c.verdict, "does not hold");
  ok(c.detail.includes("top-1 is better than top2"));
});

Deno.test("quality: routing evolution from metrics lines, the summary, rows and report", () => {
  const gate = (cv: number, drop: number) => [{ name: "g", load_cv: cv, drop_rate: drop }];
  const lines = [
    { step: 1, gates: gate(0.2, 0) },
    { step: 2, gates: gate(0.4, 0.1), val_gates: gate(1.5, 0.4) },
    { step: 3, gates: gate(0.1, 0) },
    { step: 4, gates: gate(0.3, 0), val_gates: gate(0.9, 0.2) },
  ];
  const evo = routingEvolution(lines);
  deepEqual(evo.g.map((p) => p.step), [2, 4]);
  ok(Math.abs(evo.g[0].loadCv - 0.3) < 1e-12 && Math.abs(evo.g[0].dropRate - 0.05) < 1e-12);
  ok(Math.abs(evo.g[1].loadCv - 0.2) < 1e-12);
  equal(evo.g[1].evalDropRate, 0.2);
  const settings = { ...settingsOf(["--cases", "top1", "--other-seeds", "0"]), seeds: 2 };
  const results: RunResult[] = [
    run("top2", 1, 2.5, { gates: evo }),
    run("top2", 2, 2.4, { gates: evo }),
    run("top1", 1, 2.6, {
      gates: evo,
      spikes: [{ step: 12, reason: "grad_norm", loss: 5, gradNorm: 160 }],
    }),
    run("top1", 2, 2.45, { gates: evo }),
  ];
  const q = summarizeQuality(results, settings, 60);
  deepEqual(q.ranking.main, ["top2", "top1"]);
  const h = q.health.find((x) => x.case === "top1")!;
  equal(h.spikes, 1);
  deepEqual(h.spikeSteps, ["1:12"]);
  equal(h.evalDropRate, 0.2);
  const rows = qualityRows(q);
  const value = (c: string, m: string) => rows.find((r) => r.case === c && r.metric === m)?.value;
  ok(Math.abs((value("top1", "delta_vs_top2") as number) - 0.075) < 1e-12);
  equal(value("top1", "seeds"), 2);
  equal(value("top1", "steps"), 300);
  ok((value("top1", "params") as number) > 400000);
  equal(value("top1/g", "eval_drop_rate"), 0.2);
  for (
    const m of [
      "val_loss",
      "val_loss_std",
      "delta_vs_top2_ci95_low",
      "delta_vs_top2_ci95_high",
      "heldout_loss",
      "load_cv",
      "drop_rate",
    ]
  ) ok(value("top1", m) !== undefined, m);
  const md = qualityMarkdown(q).join("\n");
  ok(md.includes("| top1 |") && md.includes("Top-1 is the worst MoE variant"));
});

Deno.test("quality: the final loss against the plateau exit, fitted by hand", () => {
  // Exits 10, 20, 30 with losses 2.5, 2.6, 2.7: r = 1, slope 0.01 a step.
  const runs = [10, 20, 30].map((e, i) =>
    run("top2", i + 1, 2.5 + 0.01 * (e - 10), { plateauExit: e })
  );
  const fit = plateauFit(runs)!;
  equal(fit.n, 3);
  ok(Math.abs(fit.r - 1) < 1e-12 && Math.abs(fit.slope - 0.01) < 1e-12);
  // Exits 10, 20, 30, 40 with losses 2.6, 2.5, 2.7, 2.8: sxy = 0.75 + 0.75 + 0.25 + 2.25 = 4, sxx = 500, syy = 0.05: slope 0.008, r = 0.8.
  const four = [[10, 2.6], [20, 2.5], [30, 2.7], [40, 2.8]].map(([e, v], i) =>
    run("se", i + 1, v, { plateauExit: e })
  );
  const f4 = plateauFit([...four, run("se", 9, 2.9, { plateauExit: null })])!;
  equal(f4.n, 4);
  ok(Math.abs(f4.slope - 0.008) < 1e-12);
  ok(Math.abs(f4.r - 0.8) < 1e-9);
  equal(plateauFit(runs.slice(0, 2)), null);
  // The report's "Why this size" states the same figures, with this run's speed and time.
  const settings = { ...settingsOf(["--cases", "se", "--other-seeds", "0"]), seeds: 2 };
  const stuck = run("se", 9, 2.9, { plateauExit: null });
  const md = qualityMarkdown(summarizeQuality([...four, stuck], settings, 1800)).join("\n");
  ok(md.includes("the 5 runs of 300 steps took 30.0 minutes in all"), md);
  ok(
    md.includes(
      "4 of 5 runs left the unigram plateau (training loss below 3; the last at step 40)",
    ),
  );
  ok(md.includes("at least 260 steps past it"));
  ok(md.includes("(r = 0.80, 0.080 nats per 10 steps later)"));
});

Deno.test("quality: the other convention is ranked against the same seeds of the main one", () => {
  const settings = { ...settingsOf(["--cases", "top1"]), seeds: 2 };
  equal(settings.otherSeeds, 1);
  const mean = (r: RunResult): RunResult => ({ ...r, convention: "mean" });
  // Over both seeds top-1 leads (2.425 < 2.45); over seed 1, which "mean" ran, top-2 does.
  const results: RunResult[] = [
    run("top2", 1, 2.5),
    run("top2", 2, 2.4),
    run("top1", 1, 2.55),
    run("top1", 2, 2.3),
    mean(run("top2", 1, 2.52)),
    mean(run("top1", 1, 2.56)),
  ];
  const q = summarizeQuality(results, settings, 60);
  deepEqual(q.ranking.main, ["top1", "top2"]);
  deepEqual(q.ranking.mainOnOtherSeeds, ["top2", "top1"]);
  deepEqual(q.ranking.other, ["top2", "top1"]);
  const md = qualityMarkdown(q).join("\n");
  ok(md.includes("under mean: top2 < top1: the same order"), md);
  ok(md.includes("| top2 | 2.5000 | 2.5200 | 0.0200 | – | 1 / 1 |"), md);
  const rows = qualityRows(q);
  const value = (c: string, m: string) => rows.find((r) => r.case === c && r.metric === m)?.value;
  equal(value("top1", "val_loss_sum_same_seeds"), 2.55);
  equal(value("top1", "rank_sum_same_seeds"), 2);
  equal(value("top1", "rank"), 1);
  equal(value("top1", "rank_mean"), 2);
});
