/**
 * How every benchmark reports: one JSON object a line with `--json`
 * (`{bench, case, metric, value, unit}`), else a readable table.
 *
 * @module
 */
export { median } from "../models/stats.ts";

/** One measured figure. */
export interface BenchRow {
  bench: string;
  case: string;
  metric: string;
  value: number | string;
  unit: string;
  /** What the figure is compared against (e.g. Ray's published number), shown in the table. */
  reference?: string;
}

/** Prints rows as JSON lines or as a table grouped by case. */
export function printRows(rows: BenchRow[], json: boolean): void {
  if (json) {
    for (const r of rows) console.log(JSON.stringify(r));
    return;
  }
  const header = ["case", "metric", "value", "unit", "reference"];
  const cells = rows.map((r) => [
    r.case,
    r.metric,
    typeof r.value === "number" ? formatNumber(r.value) : r.value,
    r.unit,
    r.reference ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((x, i) => i === 2 ? x.padStart(widths[i]) : x.padEnd(widths[i])).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(line(c));
}

/** A figure of a report: {@linkcode formatNumber}, or "–" when it is missing (not finite). */
export function formatFigure(v: number): string {
  return Number.isFinite(v) ? formatNumber(v) : "–";
}

/** A number with about four significant digits. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(4)).toString();
}
