/**
 * A grouped bar chart as an SVG document: one group of bars per category
 * (e.g. a variant), one bar per series (e.g. training and inference), an
 * optional reference mark on each bar (e.g. the paper's figure) and a
 * dashed baseline (e.g. a speed-up of 1).
 *
 * @module
 */

/** One series of bars: a value (and optional reference) per category. */
export interface BarSeries {
  /** Shown in the legend. */
  name: string;
  /** Fill colour. */
  colour: string;
  /** One value per category; null draws no bar. */
  values: (number | null)[];
  /** One reference per category, drawn as a black mark across the bar; null for none. */
  references?: (number | null)[];
}

/** What {@linkcode barChartSvg} draws. */
export interface BarChart {
  /** Title above the chart. */
  title: string;
  /** Category labels, under each group. */
  categories: string[];
  /** The series, drawn side by side in each group. */
  series: BarSeries[];
  /** Value of the dashed baseline (default 1). */
  baseline?: number;
}

const HEIGHT = 300, TOP = 40, BOTTOM = 60, LEFT = 50, GROUP = 90, BAR_GAP = 2;

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The chart as an SVG document. Every bar is a `<rect class="bar">` with a
 * `<title>` giving its value.
 *
 * @example
 * ```ts
 * import { barChartSvg } from "./bar_chart_svg.ts";
 * const svg = barChartSvg({
 *   title: "pcie",
 *   categories: ["top1", "scmoe-pos2"],
 *   series: [{ name: "train", colour: "#1f77b4", values: [1.1, 1.3], references: [1.27, 1.43] }],
 * });
 * svg.match(/class="bar"/g)?.length; // 2
 * ```
 */
export function barChartSvg(chart: BarChart): string {
  const baseline = chart.baseline ?? 1;
  const all = chart.series.flatMap((s) => [...s.values, ...(s.references ?? [])]);
  const max = Math.max(baseline, ...all.filter((v): v is number => v !== null)) * 1.1;
  const plot = HEIGHT - TOP - BOTTOM;
  const y = (v: number) => TOP + plot - (Math.max(0, v) / max) * plot;
  const width = LEFT + chart.categories.length * GROUP + 150;
  const barW = (GROUP - 20) / Math.max(1, chart.series.length) - BAR_GAP;
  const parts: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    parts.push(
      `<line x1="${LEFT}" y1="${y(v).toFixed(1)}" x2="${width - 150}" y2="${
        y(v).toFixed(1)
      }" stroke="#eee"/><text x="${LEFT - 4}" y="${
        (y(v) + 4).toFixed(1)
      }" text-anchor="end" font-size="10">${v.toFixed(2)}</text>`,
    );
  }
  chart.categories.forEach((cat, c) => {
    const gx = LEFT + c * GROUP + 10;
    chart.series.forEach((s, k) => {
      const v = s.values[c];
      const x = gx + k * (barW + BAR_GAP);
      if (v !== null) {
        parts.push(
          `<rect class="bar" x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${
            barW.toFixed(1)
          }" height="${(y(0) - y(v)).toFixed(1)}" fill="${s.colour}"><title>${
            esc(`${cat} ${s.name}: ${v.toFixed(3)}`)
          }</title></rect><text x="${(x + barW / 2).toFixed(1)}" y="${
            (y(v) - 3).toFixed(1)
          }" font-size="9" text-anchor="middle">${v.toFixed(2)}</text>`,
        );
      }
      const ref = s.references?.[c] ?? null;
      if (ref !== null) {
        parts.push(
          `<line class="reference" x1="${(x - 2).toFixed(1)}" y1="${y(ref).toFixed(1)}" x2="${
            (x + barW + 2).toFixed(1)
          }" y2="${y(ref).toFixed(1)}" stroke="#000" stroke-width="2"><title>${
            esc(`${cat} ${s.name} reference: ${ref.toFixed(2)}`)
          }</title></line>`,
        );
      }
    });
    parts.push(
      `<text x="${(gx + (GROUP - 20) / 2).toFixed(1)}" y="${
        HEIGHT - BOTTOM + 14
      }" font-size="10" text-anchor="middle">${esc(cat)}</text>`,
    );
  });
  parts.push(
    `<line x1="${LEFT}" y1="${y(baseline).toFixed(1)}" x2="${width - 150}" y2="${
      y(baseline).toFixed(1)
    }" stroke="#555" stroke-dasharray="4 3"/>`,
  );
  const legend = [
    ...chart.series.map((s) => [s.name, s.colour]),
    ["reference (bar-wide mark)", "#000"],
  ];
  legend.forEach(([name, colour], i) => {
    const ly = TOP + i * 18;
    parts.push(
      `<rect x="${width - 140}" y="${ly}" width="12" height="12" fill="${colour}"/><text x="${
        width - 124
      }" y="${ly + 10}" font-size="11">${esc(name)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" font-family="sans-serif" font-size="11">` +
    `<rect width="100%" height="100%" fill="#fff"/><text x="${LEFT}" y="20" font-weight="bold">${
      esc(chart.title)
    }</text>${parts.join("")}</svg>\n`;
}
