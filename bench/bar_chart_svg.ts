/**
 * A grouped bar chart as an SVG document: one group of bars per category
 * (e.g. a variant), one bar per series (e.g. training and inference), an
 * optional reference mark on each bar (e.g. the paper's figure) and a
 * dashed baseline (e.g. a speed-up of 1).
 *
 * The layout keeps it readable: round ticks (1, 2 or 5 times a power of
 * ten) that always include the baseline; a legend, wrapped onto as many
 * rows as it needs, with an entry for every colour and mark drawn; and each
 * bar's value written above both its bar and its reference mark (and off
 * the baseline), so no mark strikes through a label. Text widths are
 * estimated with {@linkcode textWidth}, which the tests use too.
 *
 * @module
 */
import { type Box, decimals, esc, niceStep, textBox, textWidth } from "./svg_text.ts";

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
  /** Value of the dashed baseline (default 1); always one of the ticks. */
  baseline?: number;
  /** The legend's words for the reference marks (default "reference"). */
  referenceName?: string;
  /** The legend's words for the baseline (default "baseline (1)"). */
  baselineName?: string;
}

/** Font sizes: title (bold), legend, ticks and categories, value labels. */
export const FONT = { title: 12, legend: 11, axis: 10, value: 9 } as const;

const PLOT = 220, LEFT = 50, RIGHT = 16, MIN_GROUP = 90, BAR_GAP = 2, PAD = 10;
const SWATCH = 18, LEGEND_ROW = 18, LEGEND_GAP = 18;

/** The y axis of a chart: round ticks from 0 to at least every value, the baseline among them. */
export function barTicks(values: number[], baseline: number): number[] {
  const max = Math.max(baseline, ...values.filter(Number.isFinite));
  const step = niceStep(max / 5);
  const n = Math.max(1, Math.ceil(max / step - 1e-9));
  const d = decimals(step);
  const ticks = Array.from({ length: n + 1 }, (_, i) => Number((i * step).toFixed(d)));
  if (!ticks.some((t) => Math.abs(t - baseline) < 1e-9)) ticks.push(baseline);
  return ticks.sort((a, b) => a - b);
}

/** How a tick is written: as many decimals as the step needs (at least one below 10). */
function tickText(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  return v.toFixed(Math.max(decimals(step), ticks[ticks.length - 1] < 10 ? 1 : 0));
}

/**
 * The chart as an SVG document. Every bar is a `<rect class="bar">` with a
 * `<title>` giving its value, its label a `<text class="value">`; reference
 * marks are `<line class="reference">`, the baseline `<line
 * class="baseline">`, ticks `<text class="tick">` and legend entries
 * `<text class="legend">`.
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
  const finite = (v: number | null | undefined): v is number =>
    v !== null && v !== undefined && Number.isFinite(v);
  const all = chart.series.flatMap((s) => [...s.values, ...(s.references ?? [])]).filter(finite);
  const ticks = barTicks(all, baseline);
  const top = ticks[ticks.length - 1];
  const group = Math.max(
    MIN_GROUP,
    ...chart.categories.map((c) => textWidth(c, FONT.axis) + 2 * PAD),
  );
  const plotRight = LEFT + chart.categories.length * group;
  const hasRefs = chart.series.some((s) => (s.references ?? []).some(finite));

  // The legend: every series, then the reference mark (if drawn) and the baseline.
  type Entry = { name: string; draw: (x: number, y: number) => string };
  const entries: Entry[] = [
    ...chart.series.map((s): Entry => ({
      name: s.name,
      draw: (x, y) => `<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${s.colour}"/>`,
    })),
    ...(hasRefs
      ? [{
        name: chart.referenceName ?? "reference",
        draw: (x: number, y: number) =>
          `<line x1="${x - 1}" y1="${y - 4}" x2="${x + 13}" y2="${
            y - 4
          }" stroke="#000" stroke-width="2"/>`,
      }]
      : []),
    {
      name: chart.baselineName ?? `baseline (${baseline})`,
      draw: (x, y) =>
        `<line x1="${x - 1}" y1="${y - 4}" x2="${x + 13}" y2="${
          y - 4
        }" stroke="#333" stroke-dasharray="4 3"/>`,
    },
  ];
  const entryW = (e: Entry) => SWATCH + textWidth(e.name, FONT.legend);
  const titleW = textWidth(chart.title, FONT.title, true);
  const width = Math.ceil(
    Math.max(
      plotRight + RIGHT,
      LEFT + titleW + RIGHT,
      LEFT + Math.max(...entries.map(entryW)) + RIGHT,
    ),
  );
  const legendParts: string[] = [];
  let lx = LEFT, row = 0;
  for (const e of entries) {
    const w = entryW(e);
    if (lx > LEFT && lx + w > width - RIGHT) {
      lx = LEFT;
      row++;
    }
    const ly = 40 + row * LEGEND_ROW;
    legendParts.push(
      `${e.draw(lx, ly)}<text class="legend" x="${
        lx + SWATCH
      }" y="${ly}" font-size="${FONT.legend}">${esc(e.name)}</text>`,
    );
    lx += w + LEGEND_GAP;
  }
  const plotTop = 40 + row * LEGEND_ROW + 28;
  const height = plotTop + PLOT + 36;
  const y = (v: number) => plotTop + PLOT - (Math.max(0, v) / top) * PLOT;
  const barW = (group - 2 * PAD) / Math.max(1, chart.series.length) - BAR_GAP;

  const parts: string[] = [];
  for (const t of ticks) {
    parts.push(
      `<line x1="${LEFT}" y1="${y(t).toFixed(1)}" x2="${plotRight}" y2="${
        y(t).toFixed(1)
      }" stroke="#e5e5e5"/><text class="tick" x="${LEFT - 4}" y="${
        (y(t) + 3.5).toFixed(1)
      }" text-anchor="end" font-size="${FONT.axis}">${tickText(t, ticks)}</text>`,
    );
  }
  const labels: string[] = [];
  const baseY = y(baseline);
  chart.categories.forEach((cat, c) => {
    const gx = LEFT + c * group + PAD;
    chart.series.forEach((s, k) => {
      const v = s.values[c];
      const ref = s.references?.[c];
      const x = gx + k * (barW + BAR_GAP);
      if (finite(v)) {
        parts.push(
          `<rect class="bar" x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${
            barW.toFixed(1)
          }" height="${(y(0) - y(v)).toFixed(1)}" fill="${s.colour}"><title>${
            esc(`${cat} ${s.name}: ${v.toFixed(3)}`)
          }</title></rect>`,
        );
        // Above the bar and its mark; above the baseline too where it would cross the label.
        const text = v.toFixed(2);
        const cx = x + barW / 2;
        let by = y(Math.max(v, finite(ref) ? ref : v)) - 4;
        const box = (b: number): Box => textBox(text, cx, b, FONT.value, "middle");
        const onBase = (b: Box) => b.y0 - 1 < baseY + 1 && baseY - 1 < b.y1 + 1;
        if (onBase(box(by))) by = baseY - 4;
        labels.push(
          `<text class="value" x="${cx.toFixed(1)}" y="${
            by.toFixed(1)
          }" font-size="${FONT.value}" text-anchor="middle">${text}</text>`,
        );
      }
      if (finite(ref)) {
        parts.push(
          `<line class="reference" x1="${(x - 2).toFixed(1)}" y1="${y(ref).toFixed(1)}" x2="${
            (x + barW + 2).toFixed(1)
          }" y2="${y(ref).toFixed(1)}" stroke="#000" stroke-width="2"><title>${
            esc(`${cat} ${s.name} ${chart.referenceName ?? "reference"}: ${ref.toFixed(2)}`)
          }</title></line>`,
        );
      }
    });
    parts.push(
      `<text class="category" x="${(gx + (group - 2 * PAD) / 2).toFixed(1)}" y="${
        plotTop + PLOT + 16
      }" font-size="${FONT.axis}" text-anchor="middle">${esc(cat)}</text>`,
    );
  });
  parts.push(
    `<line class="baseline" x1="${LEFT}" y1="${baseY.toFixed(1)}" x2="${plotRight}" y2="${
      baseY.toFixed(1)
    }" stroke="#333" stroke-dasharray="4 3"/>`,
    `<line x1="${LEFT}" y1="${y(0)}" x2="${plotRight}" y2="${y(0)}" stroke="#999"/>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">` +
    `<rect width="100%" height="100%" fill="#fff"/><text class="title" x="${LEFT}" y="20" font-size="${FONT.title}" font-weight="bold">${
      esc(chart.title)
    }</text>${legendParts.join("")}${parts.join("")}${labels.join("")}</svg>\n`;
}
