/**
 * The pure parts of the scenario benchmark: the bar-chart SVG, the link
 * calibration, the step-time figure and the choice of shaping.
 */
import { deepEqual as assertEquals, ok } from "node:assert/strict";
import { barChartSvg } from "../bench/bar_chart_svg.ts";
import { speedupSources, whyShort } from "../bench/report_why.ts";
import { type CaseResult, correctLink, figure, groupFigure } from "../bench/overlap.ts";
import type { OverlapReport } from "../models/overlap_report.ts";
import {
  chooseShaping,
  holdShare,
  linkForShare,
  nextWireMs,
  SCENARIO_VARIANTS,
  type ScenarioRow,
  ShapingError,
  SHARE_TOLERANCE,
  SHARE_TRIES,
  type ShareCheck,
  unshapedShare,
  withShare,
} from "../bench/scenarios.ts";
import { headlineLines } from "../bench/report_headline.ts";
import type { LinkModel } from "../collectives/types.ts";

/** Checks that every opened tag is closed in order (a small well-formedness check). */
function assertBalanced(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (closing) assertEquals(stack.pop(), name);
    else stack.push(name);
  }
  assertEquals(stack, []);
}

function assertAlmost(actual: number, expected: number, tolerance: number): void {
  if (Math.abs(actual - expected) > tolerance) {
    throw new Error(`expected ${expected} +- ${tolerance}, got ${actual}`);
  }
}

Deno.test("bar chart: well-formed, one bar per variant, reference marks where given", () => {
  const names = SCENARIO_VARIANTS.map(([v]) => v);
  const svg = barChartSvg({
    title: "pcie <speed-ups> & marks",
    categories: names,
    series: [{
      name: "training",
      colour: "#1f77b4",
      values: names.map((_, i) => 1 + i / 10),
      references: names.map((v) => v === "scmoe-pos2" ? 1.43 : null),
    }],
  });
  assertEquals(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), true);
  assertBalanced(svg);
  assertEquals(svg.match(/class="bar"/g)?.length, names.length);
  assertEquals(svg.match(/class="reference"/g)?.length, 1);
  assertEquals(svg.includes("&lt;speed-ups&gt; &amp; marks"), true);
  for (const v of names) assertEquals(svg.includes(`>${v}</text>`), true);
});

Deno.test("bar chart: two series give two bars per category; null draws none", () => {
  const svg = barChartSvg({
    title: "t",
    categories: ["a", "b"],
    series: [
      { name: "train", colour: "#000", values: [1.2, null] },
      { name: "infer", colour: "#111", values: [1.5, 0.9] },
    ],
  });
  assertBalanced(svg);
  assertEquals(svg.match(/class="bar"/g)?.length, 3);
});

Deno.test("calibration: bandwidth from a target share, by hand", () => {
  // 100 ms compute at 60% share: comm = 0.6 / 0.4 * 100 = 150 ms; 10 ms fixed and
  // 4 calls x 0.2 ms latency leave 139.2 ms for 1.392 MB: 10 MB/s.
  const cal = { computeMs: 100, fixedMs: 10, bytes: 1.392e6, calls: 4 };
  const link = linkForShare(cal, 0.6, 2e-4);
  assertAlmost(link.bandwidthBytesPerS, 1e7, 1);
  assertEquals(link.latencyS, 2e-4);
  // 15% share of 170 ms: 30 ms, 5 ms fixed, no calls: 1 MB in 25 ms = 40 MB/s.
  assertAlmost(
    linkForShare({ computeMs: 170, fixedMs: 5, bytes: 1e6, calls: 0 }, 0.15, 0)
      .bandwidthBytesPerS,
    4e7,
    1,
  );
  // A fixed cost above the target leaves a tenth of it on the wire: 30 ms -> 3 ms.
  assertAlmost(
    linkForShare({ computeMs: 170, fixedMs: 50, bytes: 3e5, calls: 0 }, 0.15, 0)
      .bandwidthBytesPerS,
    1e8,
    1,
  );
});

Deno.test("calibration: a measurement corrects the link's wire time", () => {
  // 1 MB at 10 MB/s: 100 ms on the wire; 90 ms of communication wanted, 120 ms
  // measured: 30 ms less on the wire, 1 MB in 70 ms.
  const link = { bandwidthBytesPerS: 1e7, latencyS: 2e-4 };
  const next = correctLink(link, 1e6, 90, 120);
  assertAlmost(next.bandwidthBytesPerS, 1e6 / 0.07, 1);
  assertEquals(next.latencyS, 2e-4);
  // Too little measured: more on the wire (a slower link); never under a tenth of it.
  ok(correctLink(link, 1e6, 90, 50).bandwidthBytesPerS < 1e7);
  assertAlmost(correctLink(link, 1e6, 0, 500).bandwidthBytesPerS, 1e8, 1);
});

Deno.test("calibration: the next wire time interpolates between runs that bracket the share, by hand", () => {
  const t = (wireMs: number, share: number) => ({ wireMs, share });
  // One run: the model's correction.
  assertEquals(nextWireMs([t(100, 0.3)], 0.6, 180), 180);
  // A bracket: two thirds of the way from 243 to 431 ms.
  assertAlmost(nextWireMs([t(243, 0.36), t(431, 0.57)], 0.5, 313), 243 + (2 / 3) * 188, 1e-9);
  // The closest bracket of three runs, whatever their order: 0.6 between 200 and 300 ms.
  assertAlmost(nextWireMs([t(100, 0.3), t(300, 0.7), t(200, 0.55)], 0.6, 1), 200 + 100 / 3, 1e-9);
  // Both below the target: extrapolated along the last two, at most double the last.
  assertAlmost(nextWireMs([t(100, 0.3), t(200, 0.4)], 0.5, 1), 300, 1e-9);
  assertEquals(nextWireMs([t(100, 0.3), t(200, 0.4)], 0.7, 1), 400);
  assertEquals(nextWireMs([t(100, 0.3), t(110, 0.31)], 0.6, 1), 220);
  // Both above it: extrapolated down, at most halving.
  assertAlmost(nextWireMs([t(400, 0.8), t(300, 0.7)], 0.6, 1), 200, 1e-9);
  assertEquals(nextWireMs([t(400, 0.8), t(390, 0.79)], 0.5, 1), 195);
  // A slope that noise made negative or flat: the model's correction again.
  assertEquals(nextWireMs([t(100, 0.4), t(200, 0.35)], 0.6, 250), 250);
  assertEquals(nextWireMs([t(100, 0.4), t(200, 0.4)], 0.6, 250), 250);
});

Deno.test("shaping: tc as root unless the link model is forced; its failure is one line", () => {
  assertEquals(chooseShaping(true), "link-model");
  assertEquals(chooseShaping(false), Deno.uid() === 0 ? "tc" : "link-model");
  const e = new ShapingError(new Error("ip netns add x: Permission denied\nmore detail"));
  assertEquals(
    e.message,
    "real shaping (tc, network namespaces, NATS) failed: ip netns add x: Permission denied; " +
      "--link-model skips it",
  );
});

Deno.test("calibration: the unshaped share, by hand", () => {
  // 75 ms compute, 25 ms unshaped transfer: communication is 25% of the block on the unshaped link.
  assertAlmost(unshapedShare({ computeMs: 75, fixedMs: 25, bytes: 1e6, calls: 4 }), 0.25, 1e-9);
});

/**
 * A stand-in for a scenario run: 100 ms of top-2 compute, its bytes (1 MB)
 * on the link plus `fixedMs`, the wire time scaled by `wireFactor` (a link
 * that moves the bytes faster or slower than modelled), then `bias` added to
 * the share (machine noise the link cannot remove).
 */
function fakeRuns(fixedMs: number, wireFactor: number, bias = 0) {
  const links: number[] = [];
  const measure = (link: LinkModel) => {
    links.push(link.bandwidthBytesPerS);
    const commMs = fixedMs + wireFactor * (1e6 / link.bandwidthBytesPerS) * 1e3;
    const share = Math.min(0.99, commMs / (100 + commMs) + bias);
    return Promise.resolve({ share, computeMs: 100, commMs, results: links.length });
  };
  return { links, measure };
}

const CAL = { computeMs: 100, fixedMs: 10, bytes: 1e6, calls: 0 };

Deno.test("holdShare: a run at the share is kept at once", async () => {
  const f = fakeRuns(10, 1);
  const held = await holdShare({ target: 0.6, calibration: CAL, latencyS: 0, measure: f.measure });
  // 60% of 100 ms compute: 150 ms of communication, 140 ms of it 1 MB on the wire.
  assertEquals(f.links.length, 1);
  assertAlmost(held.link.bandwidthBytesPerS, 1e6 / 0.14, 1);
  assertEquals(held.check, {
    target: 0.6,
    measured: 0.6,
    onTarget: true,
    outOfReach: false,
    runs: 1,
  });
});

Deno.test("holdShare: a run off the share recalibrates the link and measures again", async () => {
  // The link moves the bytes in half the modelled time: the first run reads 80 / 180.
  const f = fakeRuns(10, 0.5);
  const held = await holdShare({ target: 0.6, calibration: CAL, latencyS: 0, measure: f.measure });
  ok(f.links.length > 1 && f.links.length <= SHARE_TRIES, `${f.links.length} runs`);
  ok(f.links[1] < f.links[0], "a slower link the second time");
  ok(Math.abs(held.check.measured - 0.6) <= SHARE_TOLERANCE, JSON.stringify(held.check));
  assertEquals(held.check.onTarget, true);
  assertEquals(held.result, f.links.length, "the last run's results, the one on target");
});

Deno.test("holdShare: a share no run reaches is marked off target, the closest run kept", async () => {
  // Noise adds 0.05 to every share whatever the link: each run overshoots by 0.05 or so.
  const f = fakeRuns(10, 1, 0.05);
  const logged: string[] = [];
  const held = await holdShare({
    target: 0.6,
    calibration: CAL,
    latencyS: 0,
    measure: f.measure,
    log: (l) => logged.push(l),
    tries: 3,
  });
  ok(held.check.runs >= 2 && held.check.runs <= 3, JSON.stringify(held.check));
  assertEquals(held.check.onTarget, false);
  assertEquals(held.check.outOfReach, false);
  ok(Math.abs(held.check.measured - 0.6) > SHARE_TOLERANCE);
  ok(logged.at(-1)!.startsWith("off target: the closest run measured"), logged.at(-1));
});

Deno.test("holdShare: a busy calibration does not rule a share out; the fastest link does", async () => {
  // The calibration's unshaped transfer (30 ms of 100 ms compute) says 15% is out of reach, but
  // the runs transfer with 5 ms fixed: the first, on the fastest link, reads below 15%.
  const busy = { ...CAL, fixedMs: 30 };
  const f = fakeRuns(5, 1);
  const held = await holdShare({
    target: 0.15,
    calibration: busy,
    latencyS: 0,
    measure: f.measure,
  });
  ok(f.links.length > 1, "measured again on a slower link");
  assertEquals(held.check.onTarget, true, JSON.stringify(held.check));
  // With 30 ms fixed in every run, no link gives 15%: one run on the fastest link, out of reach.
  const slow = fakeRuns(30, 1);
  const none = await holdShare({
    target: 0.15,
    calibration: busy,
    latencyS: 0,
    measure: slow.measure,
  });
  assertEquals(slow.links.length, 1);
  assertEquals(none.check.outOfReach, true);
  assertEquals(none.check.onTarget, false);
});

Deno.test("scenario rows: each kind of step's rows carry its share check", () => {
  const train: ShareCheck = {
    target: 0.15,
    measured: 0.098,
    onTarget: false,
    outOfReach: false,
    runs: 4,
  };
  const infer: ShareCheck = {
    target: 0.15,
    measured: 0.16,
    onTarget: true,
    outOfReach: false,
    runs: 2,
  };
  const row = (metric: string): ScenarioRow => ({
    bench: "scenarios",
    case: "nvlink/scmoe-pos2",
    metric,
    value: 1,
    unit: "x",
    shaping: "tc",
  });
  const marked = ["train_speedup", "hidden_fraction", "infer_speedup", "infer_hidden_fraction"]
    .map((m) => withShare(row(m), { train, infer }));
  assertEquals(
    marked.map((r) => [r.share_target, r.share_measured, r.on_target]),
    [[0.15, 0.098, 0], [0.15, 0.098, 0], [0.15, 0.16, 1], [0.15, 0.16, 1]],
  );
  // Off target, the paper's figure is not shown as a reference the row met or missed.
  const paper = { ...row("train_speedup"), reference: "paper 1.12" };
  assertEquals(
    withShare(paper, { train, infer }).reference,
    "paper 1.12, not compared: top-2 share 0.098 off its target 0.15",
  );
  assertEquals(
    withShare({ ...paper, metric: "infer_speedup" }, { train, infer }).reference,
    "paper 1.12",
  );
});

Deno.test("report: the headline table holds on-target rows only, the others named", () => {
  const rows: ScenarioRow[] = [];
  const add = (scenario: string, metric: string, value: number, share: number, target: number) =>
    rows.push({
      bench: "scenarios",
      case: `${scenario}/scmoe-pos2`,
      metric,
      value,
      unit: "x",
      shaping: "tc",
      share_target: target,
      share_measured: share,
      on_target: Math.abs(share - target) <= SHARE_TOLERANCE ? 1 : 0,
    });
  for (
    const [metric, v] of [["train_speedup", 1.56], ["train_speedup_bound", 1.6], [
      "hidden_fraction",
      0.84,
    ]] as const
  ) {
    add("pcie", metric, v, 0.59, 0.6);
    add("nvlink", metric, v / 1.4, 0.098, 0.15);
  }
  for (
    const [metric, v] of [["infer_speedup", 1.8], ["infer_speedup_bound", 1.81], [
      "infer_hidden_fraction",
      1,
    ]] as const
  ) {
    add("pcie", metric, v, 0.609, 0.6);
    add("nvlink", metric, v / 1.5, 0.16, 0.15);
  }
  const lines = headlineLines(rows, ["pcie", "nvlink"], {
    pcie: [1.43, 1.66],
    nvlink: [1.12, 1.17],
  });
  assertEquals(lines.slice(2, 5), [
    "| `pcie` | training | 0.59 (target 0.6) | 1.56x | 1.43x | 1.6x | 0.84 |",
    "| `pcie` | inference | 0.609 (target 0.6) | 1.8x | 1.66x | 1.81x | 1 |",
    "| `nvlink` | inference | 0.16 (target 0.15) | 1.2x | 1.17x | 1.207x | 0.6667 |",
  ]);
  ok(!lines.some((l) => l.includes("| `nvlink` | training")), "the off-target row is left out");
  assertEquals(
    lines.at(-2),
    "Left out, measured off the scenario's share: nvlink training (top-2 share 0.098, target 0.15).",
  );
});

Deno.test("report: why Pos-2 falls short, from the figures, by hand", () => {
  const rows: Record<string, number> = {
    "s/scmoe-pos2 train_speedup": 1.2,
    "s/scmoe-pos2 train_speedup_bound": 1.25,
    "s/scmoe-pos2 train_step_ms": 100,
    "s/top2 train_step_ms": 120,
    "s/scmoe-pos2 block_compute_ms": 50,
    "s/top2 block_compute_ms": 45,
    "s/scmoe-pos2 block_comm_ms": 40,
    "s/top2 block_comm_ms": 40,
    "s/scmoe-pos2 exposed_ms": 10,
    "s/top2 exposed_ms": 38,
    "s/scmoe-pos2 handoff_ms": 2,
    "s/top2 handoff_ms": 1,
    "s/scmoe-pos2 allreduce_wait_ms": 5,
    "s/top2 allreduce_wait_ms": 7,
    "s/scmoe-pos2 infer_speedup": 2,
  };
  const value = (c: string, m: string) => rows[`${c} ${m}`] ?? NaN;
  const lines = whyShort(value, "s", [1.43, 1.66]);
  assertEquals(lines.length, 4); // a heading, a blank line, training only, a blank line
  const train = lines[2];
  ok(train.startsWith("- Training: Pos-2 1.2x vs 1.43x. Step 100 vs 120 ms"), train);
  ok(train.includes("exposed 10 vs 38 ms"), train);
  ok(train.includes("hand-off of results to the compute thread 2 vs 1 ms"), train);
  ok(train.includes("all-reduce wait 5 vs 7 ms"), train);
  // The rest: 100 - 50 - 10 - 2 - 5 = 33 ms; 120 - 45 - 38 - 1 - 7 = 29 ms.
  ok(
    train.includes(
      "the rest of the step (dense block, embedding, head, backward bookkeeping) 33 vs 29 ms",
    ),
    train,
  );
  ok(train.includes("would reach only 1.25x"), train);
  // Top-2 waits 38 of 120 ms: hiding all of it with top-2's compute gives 120 / 82.
  ok(
    train.endsWith(
      "a step would reach 1.463x: top-2 waits on its all-to-alls for 31.67% of its step, " +
        "and 1.43x needs at least 30.07%.",
    ),
    train,
  );
  rows["s/top2 exposed_ms"] = 20;
  ok(
    whyShort(value, "s", [1.43, 1.66])[2].endsWith(
      "for 16.67% of its step, and 1.43x needs at least 30.07%: out of reach unless the step " +
        "computes less than top-2's.",
    ),
  );
  rows["s/top2 exposed_ms"] = 38;
  rows["s/scmoe-pos2 train_speedup_bound"] = 1.5;
  ok(
    whyShort(value, "s", [1.43, 1.66])[2].includes(
      "10 ms of exposed communication and block compute 5 ms longer",
    ),
  );
  assertEquals(whyShort(value, "s", [1.1, 1.66]), []);
});

Deno.test("report: Pos-2's speed-up split into communication hidden and the rest, by hand", () => {
  const rows: Record<string, number> = {
    "s/top2 train_step_ms": 120,
    "s/top2 exposed_ms": 30,
    "s/scmoe-pos2 train_step_ms": 100,
    "s/scmoe-pos2 exposed_ms": 5,
    "s/top2 infer_step_ms": 50,
    "s/top2 infer_exposed_ms": 10,
    "s/scmoe-pos2 infer_step_ms": 25,
    "s/scmoe-pos2 infer_exposed_ms": 0,
  };
  const value = (c: string, m: string) => rows[`${c} ${m}`] ?? NaN;
  const lines = speedupSources(value, "s");
  assertEquals(lines.length, 5); // a heading, a blank line, training, inference, a blank line
  // Training: 25 ms hidden of 20 saved, so Pos-2's step is 5 ms longer elsewhere;
  // 120 / 95 from hiding, 95 / 100 from the rest, 120 / 100 in all.
  assertEquals(
    lines[2],
    "- Training: 20 ms saved per step, 25 ms of it communication hidden and -5 ms elsewhere: " +
      "hiding alone gives 1.263x (top-2's step less 25 ms), the rest 0.95x (1.2x in all).",
  );
  // Inference: 10 ms hidden of 25 saved; 50 / 40 and 40 / 25 make 2x.
  assertEquals(
    lines[3],
    "- Inference: 25 ms saved per step, 10 ms of it communication hidden and 15 ms elsewhere: " +
      "hiding alone gives 1.25x (top-2's step less 10 ms), the rest 1.6x (2x in all).",
  );
  // With the waits from each rank's own issue: top-2 waited 12 ms more, Pos-2 2 ms more.
  rows["s/top2 exposed_ms_with_skew"] = 42;
  rows["s/scmoe-pos2 exposed_ms_with_skew"] = 7;
  assertEquals(
    speedupSources(value, "s")[2],
    "- Training: 20 ms saved per step, 25 ms of it communication hidden, 10 ms waits for the " +
      "later rank to issue (skew) and -15 ms elsewhere: hiding alone gives 1.263x (top-2's step " +
      "less 25 ms), the rest 0.95x (1.2x in all).",
  );
  delete rows["s/top2 infer_exposed_ms"];
  assertEquals(speedupSources(value, "s").length, 4); // training only
  assertEquals(speedupSources(() => NaN, "s"), []);
});

Deno.test("step time: the slowest rank's in each step, median over steps, by hand", () => {
  const ranks = [[100, 10, 30, 50], [1, 20, 25, 70]].map((steps): CaseResult => ({
    name: "c",
    decisions: [],
    reports: steps.map((stepMs) => ({ stepMs }) as OverlapReport),
  }));
  // From step 1 on, the slowest ranks take 20, 30 and 70 ms.
  assertEquals(groupFigure(ranks, 1, (r) => r.stepMs), 30);
  // Over steps and ranks alike, the faster rank's 10 and 25 ms pull the median down.
  assertEquals(figure(ranks, 1, (r) => r.stepMs), 27.5);
});
