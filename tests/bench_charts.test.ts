/**
 * The charts of the benchmark reports read at a glance: round ticks with
 * the baseline among them, legends and axis labels inside the picture (by
 * the width estimate the renderers use), value labels clear of the
 * reference marks, op labels only where they fit, waits on the gradient
 * all-reduce told apart from waits on an all-to-all; and they can be drawn
 * again from saved data.
 */
import { deepEqual as assertEquals, ok } from "node:assert/strict";
import { barChartSvg, barTicks, FONT as BAR_FONT } from "../bench/bar_chart_svg.ts";
import {
  type Box,
  intersects,
  niceStep,
  niceTicks,
  textBox,
  textWidth,
} from "../bench/svg_text.ts";
import {
  allToAllWaits,
  FONT as TIMELINE_FONT,
  opColour,
  timeAxis,
  timelineSvg,
  WIDTH,
} from "../bench/timeline_svg.ts";
import { type CaseResult, medianStep, redrawOverlapTimeline } from "../bench/overlap.ts";
import { redrawReport } from "../bench/report.ts";
import type { OverlapReport, TimedOp } from "../models/overlap_report.ts";
import { chromeTrace, fromChromeTrace, type TracedRun } from "../models/trace.ts";

/** An SVG element's attributes and text. */
interface El {
  tag: string;
  attrs: Record<string, string>;
  text: string;
}

/** The `<text>`, `<rect>` and `<line>` elements of an SVG document, in order. */
function elements(svg: string): El[] {
  const out: El[] = [];
  for (const m of svg.matchAll(/<(text|rect|line)\b([^>]*?)\/?>(?:([^<]*)<\/text>)?/g)) {
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(/([\w-]+)="([^"]*)"/g)) attrs[a[1]] = a[2];
    const text = (m[3] ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
    out.push({ tag: m[1], attrs, text });
  }
  return out;
}

const num = (e: El, a: string) => Number(e.attrs[a]);
const svgWidth = (svg: string) => Number(/^<svg[^>]*\bwidth="([\d.]+)"/.exec(svg)![1]);

/** The box of a `<text>` element, by the renderers' width estimate. */
function boxOf(e: El, fontSize: number): Box {
  const anchor = (e.attrs["text-anchor"] ?? "start") as "start" | "middle" | "end";
  return textBox(
    e.text,
    num(e, "x"),
    num(e, "y"),
    fontSize,
    anchor,
    e.attrs["font-weight"] === "bold",
  );
}

/** Whether `step` is 1, 2 or 5 times a power of ten. */
function isRoundStep(step: number): boolean {
  const p = 10 ** Math.floor(Math.log10(step) + 1e-9);
  return [1, 2, 5, 10].some((m) => Math.abs(step - m * p) < 1e-9 * p);
}

Deno.test("nice ticks: 1-2-5 steps, exact decimals, up to at least the maximum", () => {
  assertEquals([0.41, 0.07, 130, 1, 2.5, 0.0003].map(niceStep), [0.5, 0.1, 200, 1, 5, 0.0005]);
  assertEquals(niceTicks(1.88, 4), [0, 0.5, 1, 1.5, 2]);
  assertEquals(niceTicks(0.7, 5), [0, 0.2, 0.4, 0.6, 0.8]);
  assertEquals(niceTicks(471, 5), [0, 100, 200, 300, 400, 500]);
});

Deno.test("bar chart ticks: round, the baseline 1.0 among them, the top above every value", () => {
  // 2.07 / 4 gave 0.52, 1.04, 1.55, 2.07 before: not round, and no 1.0.
  for (const max of [0.3, 0.62, 0.95, 1.04, 1.31, 1.88, 2.07, 3.3, 7.5, 13, 140]) {
    const ticks = barTicks([0.5, max], 1);
    ok(ticks.includes(1), `${max}: ${ticks}`);
    ok(ticks[ticks.length - 1] >= max, `${max}: ${ticks}`);
    const round = ticks.filter((t) => t !== 1 || max < 5);
    const step = round[1] - round[0];
    ok(isRoundStep(step), `${max}: step ${step}`);
    for (const t of round) ok(Math.abs(t / step - Math.round(t / step)) < 1e-9, `${max}: ${t}`);
  }
});

/** A chart like the report's: two series, paper marks just above, on and just below the bars. */
function speedups(referenceName = "the paper's speed-up"): string {
  return barChartSvg({
    title: "pcie: speed-up of the step over top-2; the paper: 8x A30 PCIe, SwinV2-MoE-S",
    categories: ["top1", "se", "scmoe-pos1", "scmoe-pos2", "scmoe-pos3", "dgmoe", "top2"],
    series: [
      {
        name: "training, measured",
        colour: "#1f77b4",
        values: [1.46, 1.33, 1.53, 1.106, 1.6, 0.97, 1],
        references: [1.27, 1.24, 1.36, 1.12, 1.6, null, null],
      },
      {
        name: "inference, measured",
        colour: "#ff7f0e",
        values: [1.69, 1.52, 1.82, 1.8, 1.88, 0.99, 1],
        references: [1.39, 1.35, 1.54, 1.66, 1.9, null, null],
      },
    ],
    referenceName,
    baselineName: "top-2 (1.0)",
  });
}

Deno.test("bar chart: the tick labels are round and 1.0 is one", () => {
  const ticks = elements(speedups()).filter((e) => e.attrs.class === "tick").map((e) => e.text);
  assertEquals(ticks, ["0.0", "0.5", "1.0", "1.5", "2.0"]);
});

Deno.test("bar chart: every legend entry and the title lie inside the picture", () => {
  for (
    const name of [
      "the paper's speed-up",
      "reference (bar-wide mark): the paper's figure for this variant and setting",
    ]
  ) {
    const svg = speedups(name);
    const width = svgWidth(svg);
    const els = elements(svg);
    const legend = els.filter((e) => e.attrs.class === "legend");
    assertEquals(legend.map((e) => e.text), [
      "training, measured",
      "inference, measured",
      name,
      "top-2 (1.0)",
    ]);
    for (const e of [...legend, els.find((e) => e.attrs.class === "title")!]) {
      const box = boxOf(e, e.attrs.class === "title" ? BAR_FONT.title : BAR_FONT.legend);
      ok(box.x0 >= 0 && box.x1 <= width, `"${e.text}" spans ${box.x0}..${box.x1} of ${width}`);
    }
    // The legend sits above the plot: below the title, above every bar.
    const barTop = Math.min(...els.filter((e) => e.attrs.class === "bar").map((e) => num(e, "y")));
    for (const e of legend) ok(num(e, "y") > 20 && boxOf(e, BAR_FONT.legend).y1 < barTop);
  }
  // A long entry wraps the legend onto a second row rather than running off.
  const rows = new Set(
    elements(speedups("x".repeat(60))).filter((e) => e.attrs.class === "legend").map((e) =>
      e.attrs.y
    ),
  );
  assertEquals(rows.size, 2);
});

Deno.test("bar chart: no value label meets a reference mark or the baseline, each above its bar", () => {
  const els = elements(speedups());
  const labels = els.filter((e) => e.attrs.class === "value");
  const bars = els.filter((e) => e.attrs.class === "bar");
  const marks = els.filter((e) => e.attrs.class === "reference" || e.attrs.class === "baseline");
  assertEquals(labels.length, 14);
  assertEquals(marks.length, 10 + 1);
  const markBox = (m: El): Box => {
    const half = Number(m.attrs["stroke-width"] ?? 1) / 2;
    return {
      x0: Math.min(num(m, "x1"), num(m, "x2")),
      x1: Math.max(num(m, "x1"), num(m, "x2")),
      y0: num(m, "y1") - half,
      y1: num(m, "y1") + half,
    };
  };
  const values = [...speedups().matchAll(/class="bar"[^>]*><title>[^<]*: ([\d.]+)<\/title>/g)]
    .map((m) => Number(m[1]).toFixed(2));
  assertEquals(labels.map((l) => l.text), values);
  for (const [i, label] of labels.entries()) {
    const box = boxOf(label, BAR_FONT.value);
    for (const m of marks) {
      ok(!intersects(box, markBox(m)), `label ${label.text} meets a mark at y ${m.attrs.y1}`);
    }
    const bar = bars[i];
    ok(box.y1 <= num(bar, "y"), `label ${label.text} over its bar`);
    ok(box.x0 >= num(bar, "x") && box.x1 <= num(bar, "x") + num(bar, "width"));
  }
  // The check itself sees a label struck through, as the earlier layout drew them.
  const struck = textBox("1.11", 100, 50, BAR_FONT.value, "middle");
  ok(intersects(struck, { x0: 80, x1: 120, y0: 46, y1: 48 }));
});

/** A timed op. */
function op(
  name: string,
  kind: TimedOp["kind"],
  startMs: number,
  endMs: number,
  phase: TimedOp["phase"] = "fwd",
): TimedOp {
  return { name, kind, phase, startMs, endMs };
}

/**
 * One rank's step of an MoE block: backbone ops, a dispatch and a combine
 * in flight (waited on when `exposed`), many short ops, and a gradient
 * all-reduce that the step waits `allReduceMs` for at its end.
 */
function rankStep(t0: number, exposed: boolean, allReduceMs: number): TimedOp[] {
  const ops: TimedOp[] = [
    op("embed", "op", t0, t0 + 2),
    op("blocks.0.attn", "op", t0 + 2, t0 + 30),
  ];
  for (let i = 0; i < 12; i++) {
    ops.push(op(`blocks.1.moe.gate.dispatch.c${i}.send`, "op", t0 + 30 + i, t0 + 30.8 + i));
  }
  ops.push(
    op("blocks.1.moe.gate.dispatch", "comm", t0 + 42, t0 + 80),
    op("blocks.1.moe.gate.combine", "comm", t0 + 95, t0 + 130),
    op("blocks.1.moe.gate.combine.c1", "comm", t0 + 100, t0 + 120),
    op("blocks.1.moe.gate.combine.c2", "comm", t0 + 105, t0 + 125),
  );
  if (exposed) {
    ops.push(
      op("blocks.1.moe.gate.dispatch", "wait", t0 + 42, t0 + 80),
      op("blocks.1.moe.gate.experts", "op", t0 + 80, t0 + 95),
      op("blocks.1.moe.gate.combine", "wait", t0 + 95, t0 + 130),
    );
  } else {
    ops.push(
      op("blocks.1.moe.shared", "op", t0 + 42, t0 + 80),
      op("blocks.1.moe.gate.experts", "op", t0 + 80, t0 + 95),
      op("blocks.1.attn", "op", t0 + 95, t0 + 130),
    );
  }
  ops.push(
    op("blocks.1.mlp", "op", t0 + 130, t0 + 160, "bwd"),
    op("grads.allreduce.blocks.1", "comm", t0 + 140, t0 + 160 + allReduceMs, "bwd"),
    op("grads.allreduce", "wait", t0 + 160, t0 + 160 + allReduceMs, "bwd"),
  );
  return ops;
}

function runs(allReduceMs: number, extra = 0): TracedRun[] {
  return [
    { name: "scmoe-pos2", ranks: [rankStep(1000, false, allReduceMs), rankStep(1003, false, 5)] },
    { name: "top2", ranks: [rankStep(50, true, allReduceMs + extra), rankStep(52, true, 4)] },
  ];
}

Deno.test("timeline: axis labels round and inside the picture, the last one too", () => {
  // 471 ms ended at the plot's right edge and was cut ("471 m") before.
  // At 40 ms the step spans 200 ms: a round tick at the plot's right end.
  for (const [allReduceMs, extra] of [[311, 0], [15, 0], [40, 0], [20, 291], [0.5, 0]]) {
    const svg = timelineSvg(runs(allReduceMs, extra));
    const axis = elements(svg).filter((e) => e.attrs.class === "axis");
    ok(axis.length >= 3, `${axis.length} labels`);
    const boxes = axis.map((e) => boxOf(e, TIMELINE_FONT.axis));
    for (const [i, b] of boxes.entries()) {
      ok(b.x0 >= 0 && b.x1 <= WIDTH, `"${axis[i].text}" spans ${b.x0}..${b.x1} of ${WIDTH}`);
      if (i > 0) ok(b.x0 > boxes[i - 1].x1, `"${axis[i].text}" meets the label before`);
    }
    // Round: consecutive multiples of a 1-2-5 step up to the compressed tail (if any), and
    // no label with more than two significant digits (471 ms was one before).
    const ms = axis.map((e) => Number(e.text.replace(" ms", "")));
    const { cutMs } = timeAxis(runs(allReduceMs, extra));
    const linear = ms.filter((v) => cutMs === null || v <= cutMs);
    const step = linear[1] - linear[0];
    ok(isRoundStep(step), `step ${step}`);
    linear.forEach((v, i) => ok(Math.abs(v - i * step) < 1e-9, `${v} ms`));
    for (const v of ms.filter((v) => v > 0)) {
      const digits = v / 10 ** (Math.floor(Math.log10(v)) - 1);
      ok(Math.abs(digits - Math.round(digits)) < 1e-9, `${v} ms`);
    }
    for (const e of elements(svg).filter((e) => e.attrs.class === "legend")) {
      const b = boxOf(e, TIMELINE_FONT.legend);
      ok(b.x0 >= 0 && b.x1 <= WIDTH, `legend "${e.text}" spans ${b.x0}..${b.x1}`);
    }
  }
});

Deno.test("timeline: op labels only inside ops they fit, none over another", () => {
  const els = elements(timelineSvg(runs(311)));
  const labels: Box[] = [];
  els.forEach((e, i) => {
    if (e.attrs.class !== "op") return;
    const rect = els[i - 1];
    assertEquals(rect.tag, "rect");
    const b = boxOf(e, TIMELINE_FONT.op);
    const [x, y, w, h] = ["x", "y", "width", "height"].map((a) => num(rect, a));
    ok(b.x0 >= x && b.x1 <= x + w && b.y0 >= y && b.y1 <= y + h, `"${e.text}" outside its op`);
    for (const other of labels) ok(!intersects(b, other), `"${e.text}" over another label`);
    labels.push(b);
  });
  const texts = els.filter((e) => e.attrs.class === "op").map((e) => e.text);
  ok(texts.includes("wait blocks.1.moe.gate.dispatch"), texts.join());
  ok(texts.includes("wait grads.allreduce"), texts.join());
  // The 0.8 ms sends and the three combines in flight at once (short lanes) are not labelled.
  ok(!texts.some((t) => t.endsWith(".send") || t.includes(".combine.c")), texts.join());
});

Deno.test("timeline: waits on an all-to-all red, on the all-reduce gray; a long all-reduce tail compressed", () => {
  const red = opColour(op("blocks.1.moe.gate.dispatch", "wait", 0, 1));
  const gray = opColour(op("grads.allreduce", "wait", 0, 1));
  ok(red !== gray);
  assertEquals(opColour(op("grads.allreduce.blocks.1", "comm", 0, 1)), gray);
  ok(opColour(op("blocks.1.moe.gate.dispatch", "comm", 0, 1)) !== gray);
  const svg = timelineSvg(runs(311));
  ok(
    svg.includes(
      `fill="${gray}" fill-opacity="0.55" stroke="#fff" stroke-width="0.3"><title>wait grads.allreduce`,
    ),
  );
  ok(
    svg.includes(
      `fill="${red}" fill-opacity="1" stroke="#fff" stroke-width="0.3"><title>wait blocks.1.moe.gate.dispatch`,
    ),
  );
  // 311 ms of all-reduce alone after 163 ms (rank 1 starts 3 ms late): the rest keeps over
  // four fifths of the width.
  const long = timeAxis(runs(311));
  assertEquals(long.cutMs, 163);
  ok((long.x(163) - long.x(0)) / (long.x(long.maxMs) - long.x(0)) > 0.8);
  ok(svg.includes("compressed"));
  // A short tail keeps one linear scale.
  const short = timeAxis(runs(15));
  assertEquals(short.cutMs, null);
  const half = (short.x(short.maxMs) - short.x(0)) / 2;
  ok(Math.abs(short.x(short.maxMs / 2) - short.x(0) - half) < 1e-9);
  ok(!timelineSvg(runs(15)).includes("compressed"));
});

Deno.test("timeline: each heading gives the all-to-all exposed of the time in flight, by hand", () => {
  // In flight 0-38 and 53-88 (three combines overlapping): 73 ms; waited on throughout, or never.
  assertEquals(allToAllWaits(rankStep(0, true, 100)), { exposedMs: 73, inFlightMs: 73 });
  assertEquals(allToAllWaits(rankStep(0, false, 100)), { exposedMs: 0, inFlightMs: 73 });
  // A wait before the issue or after the completion (hand-off) is not exposed communication.
  const ops = [op("b.dispatch", "comm", 10, 20), op("b.dispatch", "wait", 5, 25)];
  assertEquals(allToAllWaits(ops), { exposedMs: 10, inFlightMs: 10 });
  const svg = timelineSvg(runs(311));
  ok(
    svg.includes(
      "</tspan>: step 471 ms; all-to-all exposed 73 of 73 ms (rank 0), 73 of 73 ms (rank 1)",
    ),
  );
  ok(
    svg.includes(
      "</tspan>: step 471 ms; all-to-all exposed 0 of 73 ms (rank 0), 0 of 73 ms (rank 1)",
    ),
  );
});

Deno.test("timeline: the drawn step is the median by the group's step time, not an outlier", () => {
  const rank = (ms: number[]): CaseResult => ({
    name: "c",
    decisions: [],
    reports: ms.map((stepMs) => ({ stepMs }) as OverlapReport),
  });
  // From step 2 on the group took 300, 210, 205 and 900 ms (an outlier): 210 is the lower middle.
  assertEquals(medianStep([rank([1, 1, 300, 210, 100, 900]), rank([1, 1, 5, 200, 205, 5])], 2), 3);
  // Odd counts: the middle one.
  assertEquals(medianStep([rank([50, 40, 60])], 0), 0);
});

Deno.test("trace: a saved Chrome trace reads back as the runs it was written from", () => {
  const traced = runs(20);
  const back = fromChromeTrace(JSON.parse(JSON.stringify(chromeTrace(traced))));
  assertEquals(back.map((r) => r.name), ["scmoe-pos2", "top2"]);
  const sorted = (ops: TimedOp[]) =>
    [...ops].sort((a, b) =>
      a.startMs - b.startMs || a.name.localeCompare(b.name) || a.kind.localeCompare(b.kind)
    );
  traced.forEach((run, r) =>
    run.ranks.forEach((ops, k) => {
      const t0 = Math.min(...run.ranks.flat().map((o) => o.startMs));
      const want = sorted(ops.map((o) => ({ ...o, startMs: o.startMs - t0, endMs: o.endMs - t0 })));
      const got = sorted(back[r].ranks[k]);
      assertEquals(got.length, want.length);
      got.forEach((o, i) => {
        assertEquals([o.name, o.kind, o.phase], [want[i].name, want[i].kind, want[i].phase]);
        ok(
          Math.abs(o.startMs - want[i].startMs) < 1e-6 && Math.abs(o.endMs - want[i].endMs) < 1e-6,
        );
      });
    })
  );
  assertEquals(timelineSvg(back), timelineSvg(traced));
});

Deno.test("redraw: a report's and the overlap bench's charts drawn again from saved data", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rows = [
      ["pcie/top1", "train_speedup", 1.46],
      ["pcie/top1", "infer_speedup", 1.69],
      ["pcie/scmoe-pos2", "train_speedup", 1.56],
      ["pcie/scmoe-pos2", "infer_speedup", 1.8],
      ["pcie/top2", "train_speedup", 1],
      ["pcie/top2", "infer_speedup", 1],
    ].map(([c, metric, value]) => JSON.stringify({ bench: "scenarios", case: c, metric, value }));
    await Deno.writeTextFile(`${dir}/scenarios.jsonl`, rows.join("\n") + "\n");
    await Deno.writeTextFile(`${dir}/timeline_pcie.json`, JSON.stringify(chromeTrace(runs(20))));
    await redrawReport(dir);
    const chart = await Deno.readTextFile(`${dir}/speedup_pcie.svg`);
    ok(chart.includes("<title>scmoe-pos2 training, measured: 1.560</title>"));
    ok(chart.includes(">the paper's speed-up</text>"));
    assertEquals(await Deno.readTextFile(`${dir}/timeline_pcie.svg`), timelineSvg(runs(20)));
    // No rows, no chart: the other scenarios are left alone.
    await Deno.stat(`${dir}/speedup_nvlink.svg`).then(() => ok(false), () => {});

    const overlap = [{ name: "scmoe-pos2", ranks: runs(20)[0].ranks }, {
      name: "scmoe-pos2/comm-x0.6-window",
      ranks: runs(20)[1].ranks,
    }];
    await Deno.writeTextFile(`${dir}/overlap_trace.json`, JSON.stringify(chromeTrace(overlap)));
    await redrawOverlapTimeline(dir);
    const timeline = await Deno.readTextFile(`${dir}/overlap_timeline.svg`);
    // The variants only: the Pos-2 window cases stay in the trace.
    ok(timeline.includes(">scmoe-pos2</tspan>"));
    ok(!timeline.includes("comm-x0.6-window"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("text width: the estimate grows with the text and is wider for bold", () => {
  ok(textWidth("reference (bar-wide mark)", 11) > textWidth("reference", 11));
  ok(textWidth("top2", 11, true) > textWidth("top2", 11));
  assertEquals(textWidth("", 11), 0);
});
