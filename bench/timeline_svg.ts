/**
 * An SVG timeline of one step per variant: for each rank a compute row (ops
 * coloured by role; waits on an all-to-all in red, waits on the gradient
 * all-reduce in gray) and a communication row (dispatch and combine
 * all-to-alls, the gradient all-reduce), on one time scale for all
 * variants, so that an all-to-all hidden under compute (blue and orange
 * above it) and one exposed (red above it) read at a glance. Each variant's
 * heading sums it up per rank: how long all-to-alls were in flight and how
 * much of that the compute thread waited on them (exposed).
 *
 * Where every variant ends in a long gradient all-reduce with nothing else
 * running (a slow link for the dense gradients), the axis after the last
 * other op is compressed, marked by a dashed line and a shaded band, so
 * the MoE blocks keep most of the width. Labels are written only inside
 * ops wide and tall enough for them; axis labels and the legend stay
 * inside the picture (widths from {@linkcode textWidth}).
 *
 * @module
 */
import type { TimedOp } from "../models/overlap_report.ts";
import { lanes, type TracedRun } from "../models/trace.ts";
import { type Box, esc, niceStep, textBox, textWidth } from "./svg_text.ts";

/** The picture's width, the row labels' column and the margin right of the plot. */
export const WIDTH = 1200, LEFT = 150, RIGHT = 36;
const ROW = 18, LANE = 6, GAP = 4, TITLE = 22;
/** Font sizes: headings and row labels, op labels, axis, legend. */
export const FONT = { text: 11, op: 9, axis: 10, legend: 11 } as const;
/** The compressed tail's share of the plot's width. */
const TAIL = 0.16;

/** Whether a collective (or a wait on one) is the dense-gradient all-reduce. */
export function isAllReduce(name: string): boolean {
  return name.startsWith("grads.") || name.includes("allreduce");
}

const C = {
  backbone: "#1f77b4",
  experts: "#ff7f0e",
  routing: "#9467bd",
  other: "#c49c94",
  exposed: "#d62728",
  allreduce: "#9a9a9a",
  dispatch: "#2ca02c",
  combine: "#17becf",
};

/** The colour of an op by its role. */
export function opColour(o: TimedOp): string {
  const n = o.name;
  if (o.kind === "wait") return isAllReduce(n) ? C.allreduce : C.exposed;
  if (o.kind === "comm") {
    if (isAllReduce(n)) return C.allreduce;
    if (/\.dispatch(\.|$)/.test(n)) return C.dispatch;
    if (/\.combine(\.|$)/.test(n)) return C.combine;
    return C.allreduce;
  }
  if (/\.send$/.test(n)) return C.routing;
  if (/\.experts(\.c\d+)?$/.test(n)) return C.experts;
  if (/\.gate(\.(preceding|current))?(\.route)?$|\.split$|\.merge$/.test(n)) return C.routing;
  if (/\.(attn|mlp|shared)$/.test(n)) return C.backbone;
  return C.other;
}

/** The legend: a label and a colour (an opacity for the backward pass' shade). */
export const LEGEND: [string, string, number?][] = [
  ["backbone (attention, MLP, shared expert)", C.backbone],
  ["experts", C.experts],
  ["MoE routing (gate, route, split/merge, issuing an all-to-all)", C.routing],
  ["other (embedding, head, loss, MoE output)", C.other],
  ["compute waits on an all-to-all (exposed communication)", C.exposed],
  ["dispatch all-to-all in flight", C.dispatch],
  ["combine all-to-all in flight", C.combine],
  ["gradient all-reduce: in flight, or compute waiting on it", C.allreduce],
  ["lighter shade: backward pass", C.backbone, 0.55],
];

/** The union of the ops' intervals, as sorted disjoint `[start, end]` pairs. */
function union(ops: TimedOp[]): [number, number][] {
  const out: [number, number][] = [];
  for (const o of [...ops].sort((a, b) => a.startMs - b.startMs)) {
    const last = out[out.length - 1];
    if (last && o.startMs <= last[1]) last[1] = Math.max(last[1], o.endMs);
    else out.push([o.startMs, o.endMs]);
  }
  return out;
}

/** Total length of intervals. */
function length(spans: [number, number][]): number {
  return spans.reduce((s, [a, b]) => s + b - a, 0);
}

/**
 * Per rank, how long all-to-alls were in flight (from this rank's issue to
 * its completion) and how much of that the compute thread spent waiting on
 * one (exposed; a wait before this rank's issue or after the completion,
 * hand-off, is not counted).
 *
 * @example
 * ```ts
 * import { allToAllWaits } from "./timeline_svg.ts";
 * const op = (kind: "comm" | "wait", startMs: number, endMs: number) =>
 *   ({ name: "blocks.1.moe.gate.dispatch", kind, phase: "fwd" as const, startMs, endMs });
 * allToAllWaits([op("comm", 0, 10), op("wait", 6, 12)]); // { exposedMs: 4, inFlightMs: 10 }
 * ```
 */
export function allToAllWaits(ops: TimedOp[]): { exposedMs: number; inFlightMs: number } {
  const mine = ops.filter((o) => !isAllReduce(o.name));
  const comm = union(mine.filter((o) => o.kind === "comm"));
  const waits = union(mine.filter((o) => o.kind === "wait"));
  let exposedMs = 0;
  for (const [a, b] of waits) {
    for (const [c, d] of comm) exposedMs += Math.max(0, Math.min(b, d) - Math.max(a, c));
  }
  return { exposedMs, inFlightMs: length(comm) };
}

/**
 * The time axis: a map from ms (since a run's first op) to x, and where the
 * compressed tail starts (`cutMs`, null when the axis is linear).
 */
export function timeAxis(runs: TracedRun[]): {
  x: (ms: number) => number;
  maxMs: number;
  cutMs: number | null;
} {
  const plotW = WIDTH - LEFT - RIGHT;
  let maxMs = 1e-3, cutMs = 0;
  for (const run of runs) {
    const all = run.ranks.flat();
    if (all.length === 0) continue;
    const t0 = Math.min(...all.map((o) => o.startMs));
    maxMs = Math.max(maxMs, ...all.map((o) => o.endMs - t0));
    const rest = all.filter((o) => !isAllReduce(o.name));
    cutMs = Math.max(cutMs, ...rest.map((o) => o.endMs - t0));
  }
  // Compress only a tail of all-reduce alone that would take over a third of the width.
  if (cutMs <= 0 || maxMs - cutMs < maxMs / 3) {
    return { x: (ms) => LEFT + (ms / maxMs) * plotW, maxMs, cutMs: null };
  }
  const s1 = (plotW * (1 - TAIL)) / cutMs, s2 = (plotW * TAIL) / (maxMs - cutMs);
  return {
    x: (ms) => LEFT + (ms <= cutMs ? ms * s1 : cutMs * s1 + (ms - cutMs) * s2),
    maxMs,
    cutMs,
  };
}

/** Axis labels: round ticks, every label clear of the one before and inside the picture. */
function axisLabels(
  x: (ms: number) => number,
  maxMs: number,
  cutMs: number | null,
  y: number,
): { ms: number; x: number; text: string; anchor: "middle" | "end" }[] {
  const plotW = WIDTH - LEFT - RIGHT;
  const linearTo = cutMs ?? maxMs;
  const linearW = cutMs === null ? plotW : plotW * (1 - TAIL);
  const ticks: number[] = [];
  const step = niceStep(linearTo / Math.max(2, Math.floor(linearW / 90)));
  for (let i = 0; i * step <= linearTo + 1e-9; i++) ticks.push(i * step);
  if (cutMs !== null) {
    const tailStep = niceStep((maxMs - cutMs) / Math.max(1, Math.floor((plotW * TAIL) / 70)));
    for (let t = Math.ceil(cutMs / tailStep + 1e-9) * tailStep; t <= maxMs + 1e-9; t += tailStep) {
      ticks.push(t);
    }
  }
  const out: { ms: number; x: number; text: string; anchor: "middle" | "end" }[] = [];
  let last: Box | null = null;
  for (const ms of ticks) {
    const text = `${Number(ms.toPrecision(12))} ms`;
    const tx = x(ms);
    let anchor: "middle" | "end" = "middle", ax = tx;
    let box = textBox(text, tx, y, FONT.axis, "middle");
    if (box.x1 > WIDTH - 4) {
      anchor = "end";
      ax = WIDTH - 4;
      box = textBox(text, ax, y, FONT.axis, "end");
    }
    if (last && box.x0 < last.x1 + 8) continue;
    out.push({ ms, x: ax, text, anchor });
    last = box;
  }
  return out;
}

/**
 * The timeline of `runs` (one step each) as an SVG document. Backward ops
 * are drawn lighter than forward ones. Op labels are `<text class="op">`
 * right after their `<rect>`; axis labels `<text class="axis">`, legend
 * entries `<text class="legend">`.
 *
 * @example
 * ```ts
 * import { timelineSvg } from "./timeline_svg.ts";
 * const op = { name: "blocks.0.attn", kind: "op" as const, phase: "fwd" as const, startMs: 0, endMs: 3 };
 * timelineSvg([{ name: "scmoe-pos2", ranks: [[op]] }]).startsWith("<svg"); // true
 * ```
 */
export function timelineSvg(runs: TracedRun[]): string {
  const { x, maxMs, cutMs } = timeAxis(runs);
  const parts: string[] = [];
  let y = 10;
  for (const run of runs) {
    const all = run.ranks.flat();
    const t0 = all.length ? Math.min(...all.map((o) => o.startMs)) : 0;
    const spanMs = all.length ? Math.max(...all.map((o) => o.endMs)) - t0 : 0;
    const waits = run.ranks.map((ops, r) => {
      const w = allToAllWaits(ops);
      return `${w.exposedMs.toFixed(0)} of ${w.inFlightMs.toFixed(0)} ms (rank ${r})`;
    });
    parts.push(
      `<text class="run" x="4" y="${y + 14}"><tspan font-weight="bold">${
        esc(run.name)
      }</tspan>: step ${spanMs.toFixed(0)} ms; all-to-all exposed ${waits.join(", ")}</text>`,
    );
    y += TITLE;
    run.ranks.forEach((ops, rank) => {
      const bar = (o: TimedOp, top: number, h: number, labelled: { end: number }) => {
        const x0 = x(o.startMs - t0), x1 = x(o.endMs - t0);
        const w = Math.max(0.5, x1 - x0);
        const label = o.kind === "wait" ? `wait ${o.name}` : o.name;
        let text = "";
        const lx = x0 + 2, ly = top + h - 5;
        if (h >= 12 && textWidth(label, FONT.op) + 4 <= w && lx >= labelled.end) {
          text = `<text class="op" x="${lx.toFixed(1)}" y="${ly}" font-size="${FONT.op}">${
            esc(label)
          }</text>`;
          labelled.end = lx + textWidth(label, FONT.op) + 2;
        }
        return `<rect x="${x0.toFixed(1)}" y="${top}" width="${w.toFixed(1)}" height="${h}" fill="${
          opColour(o)
        }" fill-opacity="${o.phase === "bwd" ? 0.55 : 1}" stroke="#fff" stroke-width="0.3"><title>${
          esc(`${label} (${o.phase}) ${(o.endMs - o.startMs).toFixed(2)} ms`)
        }</title></rect>${text}`;
      };
      parts.push(`<text x="4" y="${y + 13}">rank ${rank} compute</text>`);
      const computeRow = { end: -Infinity };
      const inOrder = [...ops].sort((a, b) => a.startMs - b.startMs);
      for (const o of inOrder) if (o.kind !== "comm") parts.push(bar(o, y, ROW, computeRow));
      y += ROW + GAP;
      const comm = inOrder.filter((o) => o.kind === "comm");
      const lane = lanes(comm);
      const nLanes = Math.max(1, ...lane.map((l) => l + 1));
      const h = nLanes === 1 ? ROW : Math.min(ROW / 2, Math.max(LANE, ROW / nLanes));
      const rowH = Math.max(ROW, nLanes * h);
      parts.push(`<text x="4" y="${y + 13}">rank ${rank} comm</text>`);
      const commRows = Array.from({ length: nLanes }, () => ({ end: -Infinity }));
      comm.forEach((o, i) => parts.push(bar(o, y + lane[i] * h, h, commRows[lane[i]])));
      y += rowH + 2 * GAP;
    });
    y += GAP;
  }
  const labels = axisLabels(x, maxMs, cutMs, y + 12);
  const axis = labels.map((l) =>
    `<line x1="${l.anchor === "end" ? x(l.ms).toFixed(1) : l.x.toFixed(1)}" y1="8" x2="${
      (l.anchor === "end" ? x(l.ms) : l.x).toFixed(1)
    }" y2="${y}" stroke="#e5e5e5"/><text class="axis" x="${l.x.toFixed(1)}" y="${
      y + 12
    }" font-size="${FONT.axis}" text-anchor="${l.anchor}">${l.text}</text>`
  );
  let band = "";
  if (cutMs !== null) {
    const cx = x(cutMs), scale = (x(maxMs) - cx) / (maxMs - cutMs);
    const ratio = ((x(cutMs) - x(0)) / cutMs / scale).toFixed(0);
    const note = `compressed ${ratio}x: gradient all-reduce only`;
    const noteW = textWidth(note, FONT.axis);
    const nx = Math.min(cx + 4, WIDTH - 4 - noteW);
    band = `<rect x="${cx.toFixed(1)}" y="8" width="${(x(maxMs) - cx).toFixed(1)}" height="${
      y - 8
    }" fill="#f3f3f3"/><line x1="${cx.toFixed(1)}" y1="8" x2="${cx.toFixed(1)}" y2="${
      y + 28
    }" stroke="#666" stroke-dasharray="5 3"/><text class="axis-note" x="${nx.toFixed(1)}" y="${
      y + 28
    }" font-size="${FONT.axis}" fill="#444">${esc(note)}</text>`;
  }
  y += cutMs === null ? 26 : 42;
  const legend: string[] = [];
  let lx = 10, row = 0;
  for (const [label, fill, opacity] of LEGEND) {
    const w = 16 + textWidth(label, FONT.legend);
    if (lx > 10 && lx + w > WIDTH - 10) {
      lx = 10;
      row++;
    }
    const ly = y + row * 18;
    legend.push(
      `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${fill}" fill-opacity="${
        opacity ?? 1
      }"/><text class="legend" x="${lx + 16}" y="${ly + 10}" font-size="${FONT.legend}">${
        esc(label)
      }</text>`,
    );
    lx += w + 22;
  }
  y += (row + 1) * 18 + 8;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" font-family="sans-serif" font-size="${FONT.text}">` +
    `<rect width="100%" height="100%" fill="#fff"/>${band}${axis.join("")}${parts.join("")}${
      legend.join("")
    }</svg>\n`;
}
