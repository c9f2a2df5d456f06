/**
 * The chart of `deno task plan`: each variant's predicted speed-up over
 * top-2 against the expert-parallel size, one line per variant, the size on
 * a log-2 axis. Plain SVG, no fonts or scripts needed.
 *
 * @module
 */

/** One line of the chart. */
export interface LineSeries {
  /** Legend text. */
  name: string;
  /** One value per x position (non-finite: a gap). */
  values: number[];
}

/** What {@linkcode lineChartSvg} draws. */
export interface LineChart {
  /** The title, one line. */
  title: string;
  /** The subtitle, one line (the assumptions in short). */
  subtitle?: string;
  /** Labels of the x positions, e.g. the expert-parallel sizes. */
  x: string[];
  /** The x axis' name. */
  xLabel: string;
  /** The y axis' name. */
  yLabel: string;
  /** The lines. */
  series: LineSeries[];
  /** A y value drawn as a dashed reference line (e.g. 1: no speed-up). */
  reference?: number;
}

const COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Round ticks from `lo` to `hi`, about five. */
function ticks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
    out.push(Number(v.toFixed(6)));
  }
  return out;
}

/**
 * The SVG text of a line chart.
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./plan_chart.ts";
 * const svg = lineChartSvg({
 *   title: "speed-up", x: ["2", "4"], xLabel: "EP", yLabel: "x",
 *   series: [{ name: "scmoe-pos2", values: [1.2, 1.3] }],
 * });
 * svg.startsWith("<svg"); // true
 * ```
 */
export function lineChartSvg(chart: LineChart): string {
  const W = 760, H = 440;
  const left = 64, right = 170, top = chart.subtitle ? 58 : 42, bottom = 56;
  const pw = W - left - right, ph = H - top - bottom;
  const values = chart.series.flatMap((s) => s.values).filter(Number.isFinite);
  if (chart.reference !== undefined) values.push(chart.reference);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!(hi > lo)) [lo, hi] = [lo - 0.5, hi + 0.5];
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const n = chart.x.length;
  const xAt = (i: number) => left + (n === 1 ? pw / 2 : (i * pw) / (n - 1));
  const yAt = (v: number) => top + ph - ((v - lo) / (hi - lo)) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
  ];
  if (chart.subtitle) {
    out.push(`<text x="${left}" y="40" font-size="10" fill="#444">${esc(chart.subtitle)}</text>`);
  }
  for (const t of ticks(lo, hi)) {
    const y = yAt(t).toFixed(1);
    out.push(
      `<line x1="${left}" y1="${y}" x2="${left + pw}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${
        left - 6
      }" y="${y}" font-size="10" text-anchor="end" dominant-baseline="middle">${t}</text>`,
    );
  }
  chart.x.forEach((label, i) => {
    const x = xAt(i).toFixed(1);
    out.push(
      `<line x1="${x}" y1="${top + ph}" x2="${x}" y2="${top + ph + 4}" stroke="#333"/>`,
      `<text x="${x}" y="${top + ph + 16}" font-size="10" text-anchor="middle">${
        esc(label)
      }</text>`,
    );
  });
  out.push(
    `<line x1="${left}" y1="${top + ph}" x2="${left + pw}" y2="${top + ph}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + ph}" stroke="#333"/>`,
    `<text x="${left + pw / 2}" y="${H - 14}" font-size="11" text-anchor="middle">${
      esc(chart.xLabel)
    }</text>`,
    `<text x="16" y="${top + ph / 2}" font-size="11" text-anchor="middle" ` +
      `transform="rotate(-90 16 ${top + ph / 2})">${esc(chart.yLabel)}</text>`,
  );
  if (chart.reference !== undefined) {
    const y = yAt(chart.reference).toFixed(1);
    out.push(
      `<line x1="${left}" y1="${y}" x2="${
        left + pw
      }" y2="${y}" stroke="#999" stroke-dasharray="5 4"/>`,
    );
  }
  chart.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const pts = s.values.map((v, i) =>
      Number.isFinite(v) ? `${xAt(i).toFixed(1)},${yAt(v).toFixed(1)}` : ""
    )
      .filter((p) => p);
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(" ")}"/>`,
    );
    for (const p of pts) {
      const [x, y] = p.split(",");
      out.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${color}"/>`);
    }
    const ly = top + 8 + k * 18;
    out.push(
      `<line x1="${left + pw + 14}" y1="${ly}" x2="${
        left + pw + 34
      }" y2="${ly}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${left + pw + 40}" y="${ly}" font-size="11" dominant-baseline="middle">${
        esc(s.name)
      }</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
