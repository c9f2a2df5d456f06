/**
 * The report's headline table: ScMoE Pos-2's speed-ups over top-2 in each
 * scenario and kind of step beside the paper's, from the rows of
 * `deno task bench scenarios` that were measured at the scenario's share
 * (`on_target: 1`); the rows that missed it are named below the table, never
 * compared with the paper.
 *
 * @module
 */
import { formatFigure } from "./output.ts";
import type { ScenarioRow } from "./scenarios.ts";

/** The variant the headline follows. */
const HEADLINE_VARIANT = "scmoe-pos2";

/** A scenario's paper speed-ups `[train, infer]` of the headline variant, when the paper has them. */
export type PaperSpeedups = Record<string, [train: number, infer: number] | undefined>;

/**
 * Markdown lines of the headline table from `rows`, scenarios in `order`:
 * per scenario and kind of step, the top-2 share measured (and the
 * target), Pos-2's speed-up and bound, the paper's speed-up and Pos-2's
 * hidden fraction; only where `on_target` is 1. The others are listed
 * after the table with the share they were measured at.
 *
 * @example
 * ```ts
 * import { headlineLines } from "./report_headline.ts";
 * const row = (metric: string, value: number, on: 0 | 1) => ({
 *   bench: "scenarios", case: "nvlink/scmoe-pos2", metric, value, unit: "x", shaping: "tc" as const,
 *   share_target: 0.15, share_measured: on ? 0.151 : 0.098, on_target: on,
 * });
 * const lines = headlineLines([row("train_speedup", 1.05, 0), row("infer_speedup", 1.2, 1)], ["nvlink"], {});
 * lines.at(-2); // "Left out, measured off the scenario's share: nvlink training (top-2 share 0.098, target 0.15)."
 * ```
 */
export function headlineLines(
  rows: ScenarioRow[],
  order: string[],
  paper: PaperSpeedups,
): string[] {
  const find = (scenario: string, metric: string) =>
    rows.find((r) => r.case === `${scenario}/${HEADLINE_VARIANT}` && r.metric === metric);
  const num = (r: ScenarioRow | undefined) => typeof r?.value === "number" ? r.value : NaN;
  const body: string[] = [];
  const left: string[] = [];
  for (const scenario of order) {
    for (const [i, kind] of (["train", "infer"] as const).entries()) {
      const pre = kind === "train" ? "" : "infer_";
      const speedup = find(scenario, `${kind}_speedup`);
      if (!speedup) continue;
      const name = kind === "train" ? "training" : "inference";
      const share = `${formatFigure(speedup.share_measured ?? NaN)} (target ${
        formatFigure(speedup.share_target ?? NaN)
      })`;
      if (speedup.on_target !== 1) {
        left.push(`${scenario} ${name} (top-2 share ${share.replace(" (target", ", target")}`);
        continue;
      }
      const p = paper[scenario]?.[i];
      body.push(
        `| \`${scenario}\` | ${name} | ${share} | ${formatFigure(num(speedup))}x | ` +
          `${p === undefined ? "–" : `${p}x`} | ` +
          `${formatFigure(num(find(scenario, `${kind}_speedup_bound`)))}x | ` +
          `${formatFigure(num(find(scenario, `${pre}hidden_fraction`)))} |`,
      );
    }
  }
  const lines = [
    "| scenario | step | top-2 share measured (target) | Pos-2 speed-up | paper | bound | hidden |",
    "|---|---|---|---|---|---|---|",
    ...body,
    "",
  ];
  if (body.length === 0) lines.splice(0, 2, "No scenario was measured at its share.");
  if (left.length > 0) {
    lines.push(`Left out, measured off the scenario's share: ${left.join("; ")}.`, "");
  }
  return lines;
}
