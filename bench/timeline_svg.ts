/**
 * An SVG timeline of one step per variant: for each rank a compute row (ops
 * coloured by role, waits on communication in red) and a communication row
 * (dispatch and combine all-to-alls, the gradient all-reduce), on one time
 * scale for all variants, so overlap and exposed communication read at a
 * glance.
 *
 * @module
 */
import type { TimedOp } from "../models/overlap_report.ts";
import { lanes, type TracedRun } from "../models/trace.ts";

const WIDTH = 1200, LEFT = 150, ROW = 18, GAP = 4, TITLE = 22;

/** The colour of an op by its role. */
function colour(o: TimedOp): string {
  if (o.kind === "wait") return "#d62728";
  const n = o.name;
  if (o.kind === "comm") {
    if (n.includes(".dispatch")) return "#2ca02c";
    if (n.includes(".combine")) return "#17becf";
    return "#7f7f7f";
  }
  if (n.includes(".experts")) return "#ff7f0e";
  if (/\.gate(\.(preceding|current))?(\.route)?$|\.split$|\.merge$/.test(n)) return "#9467bd";
  if (/\.(attn|mlp|shared)$/.test(n)) return "#1f77b4";
  return "#c7c7c7";
}

const LEGEND: [string, string][] = [
  ["backbone (attention, MLP, shared expert)", "#1f77b4"],
  ["experts", "#ff7f0e"],
  ["gate, route, split/merge", "#9467bd"],
  ["other (embedding, head, loss, output)", "#c7c7c7"],
  ["compute waits on communication", "#d62728"],
  ["dispatch all-to-all", "#2ca02c"],
  ["combine all-to-all", "#17becf"],
  ["gradient all-reduce", "#7f7f7f"],
];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The timeline of `runs` (one step each) as an SVG document. Backward ops
 * are drawn lighter than forward ones.
 *
 * @example
 * ```ts
 * import { timelineSvg } from "./timeline_svg.ts";
 * const op = { name: "blocks.0.attn", kind: "op" as const, phase: "fwd" as const, startMs: 0, endMs: 3 };
 * timelineSvg([{ name: "scmoe-pos2", ranks: [[op]] }]).startsWith("<svg"); // true
 * ```
 */
export function timelineSvg(runs: TracedRun[]): string {
  const span = (ops: TimedOp[]) =>
    ops.length ? Math.max(...ops.map((o) => o.endMs)) - Math.min(...ops.map((o) => o.startMs)) : 0;
  const maxMs = Math.max(1e-3, ...runs.map((r) => span(r.ranks.flat())));
  const scale = (WIDTH - LEFT - 10) / maxMs;
  const parts: string[] = [];
  let y = 10;
  for (const run of runs) {
    const all = run.ranks.flat();
    const t0 = Math.min(...all.map((o) => o.startMs));
    parts.push(
      `<text x="4" y="${y + 14}" font-weight="bold">${esc(run.name)} (${
        span(all).toFixed(0)
      } ms)</text>`,
    );
    y += TITLE;
    run.ranks.forEach((ops, rank) => {
      const comm = ops.filter((o) => o.kind === "comm");
      const lane = lanes(comm);
      const commLanes = Math.max(1, ...lane.map((l) => l + 1));
      const bar = (o: TimedOp, top: number, h: number) => {
        const x = LEFT + (o.startMs - t0) * scale;
        const w = Math.max(0.5, (o.endMs - o.startMs) * scale);
        const label = o.kind === "wait" ? `wait ${o.name}` : o.name;
        const text = w > label.length * 5.5
          ? `<text x="${(x + 2).toFixed(1)}" y="${top + h - 5}" font-size="9" fill="#000">${
            esc(label)
          }</text>`
          : "";
        return `<rect x="${x.toFixed(1)}" y="${top}" width="${w.toFixed(1)}" height="${h}" fill="${
          colour(o)
        }" fill-opacity="${o.phase === "bwd" ? 0.55 : 1}" stroke="#fff" stroke-width="0.3"><title>${
          esc(`${label} (${o.phase}) ${(o.endMs - o.startMs).toFixed(2)} ms`)
        }</title></rect>${text}`;
      };
      parts.push(`<text x="4" y="${y + 13}">rank ${rank} compute</text>`);
      for (const o of ops) if (o.kind !== "comm") parts.push(bar(o, y, ROW));
      y += ROW + GAP;
      parts.push(`<text x="4" y="${y + 13}">rank ${rank} comm</text>`);
      const h = ROW / Math.min(commLanes, 3);
      comm.forEach((o, i) => parts.push(bar(o, y + Math.min(lane[i], 2) * h, h)));
      y += ROW + 2 * GAP;
    });
    y += GAP;
  }
  const axis = Array.from({ length: 11 }, (_, i) => {
    const x = LEFT + (i * (WIDTH - LEFT - 10)) / 10;
    return `<line x1="${x}" y1="8" x2="${x}" y2="${y}" stroke="#eee"/><text x="${x}" y="${
      y + 12
    }" font-size="10" text-anchor="middle">${(i * maxMs / 10).toFixed(0)} ms</text>`;
  });
  y += 24;
  const legend = LEGEND.map(([label, fill], i) => {
    const x = 10 + (i % 4) * 295, ly = y + Math.floor(i / 4) * 18;
    return `<rect x="${x}" y="${ly}" width="12" height="12" fill="${fill}"/><text x="${
      x + 16
    }" y="${ly + 10}" font-size="11">${esc(label)}</text>`;
  });
  y += 44;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" font-family="sans-serif" font-size="11">` +
    `<rect width="100%" height="100%" fill="#fff"/>${axis.join("")}${parts.join("")}${
      legend.join("")
    }</svg>\n`;
}
