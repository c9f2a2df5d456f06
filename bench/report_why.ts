/**
 * The report's account of ScMoE Pos-2's speed-up over top-2 in a scenario,
 * from the traced steps' figures (`deno task bench scenarios` rows): how
 * much of it is communication hidden and how much the rest of the step;
 * and, where it falls short of a target, where its step's time goes beside
 * top-2's, whether even its bound (the MoE block at max(compute,
 * communication)) reaches the target, and what hiding all of top-2's
 * communication would reach.
 *
 * @module
 */
import { formatFigure } from "./output.ts";

/** A scenario row's value by case and metric (NaN when missing). */
export type RowValue = (c: string, metric: string) => number;

/**
 * The speed-up over top-2 of a step with top-2's compute and none of its
 * communication exposed (what hiding alone gives a variant that computes
 * as much as top-2, as ScMoE Pos-2 does by its FLOPs: a shared expert and
 * one routed expert per token), beside what `target` asks of it.
 *
 * @example
 * ```ts
 * import { ceilingText } from "./report_why.ts";
 * ceilingText(100, 10, 1.2); // "... would reach 1.111x: ... 10% of its step, and 1.2x needs at least 16.67%: out of reach ..."
 * ```
 */
export function ceilingText(top2StepMs: number, top2ExposedMs: number, target: number): string {
  const ceiling = top2StepMs / (top2StepMs - top2ExposedMs);
  const pct = (x: number) => `${formatFigure(100 * x)}%`;
  return `With top-2's compute and all of its communication hidden, a step would reach ` +
    `${formatFigure(ceiling)}x: top-2 waits on its all-to-alls for ` +
    `${pct(top2ExposedMs / top2StepMs)} of its step, and ${target}x needs at least ` +
    `${pct(1 - 1 / target)}` +
    (ceiling < target ? ": out of reach unless the step computes less than top-2's." : ".");
}

/**
 * Markdown lines saying, for training and inference, what Pos-2's step
 * saves over top-2's and where from: the communication top-2 leaves exposed
 * and Pos-2 hides; the waits for the later rank to issue an all-to-all
 * (skew: exposed from the rank's own issue less exposed from the last
 * issue), when the rows have them; and the rest (compute, hand-off and
 * all-reduce waits, negative where Pos-2's are longer). Then the speed-up
 * hiding the communication alone would give, with top-2's step otherwise,
 * and the factor of the rest.
 *
 * @example
 * ```ts
 * import { speedupSources } from "./report_why.ts";
 * const rows: Record<string, number> = {
 *   "s/top2 train_step_ms": 120, "s/top2 exposed_ms": 30,
 *   "s/scmoe-pos2 train_step_ms": 100, "s/scmoe-pos2 exposed_ms": 5,
 * };
 * speedupSources((c, m) => rows[`${c} ${m}`] ?? NaN, "s")[2];
 * // "- Training: 20 ms saved per step, 25 ms of it communication hidden and -5 ms
 * // elsewhere: hiding alone gives 1.263x (top-2's step less 25 ms), the rest 0.95x (1.2x in all)."
 * ```
 */
export function speedupSources(value: RowValue, scenario: string): string[] {
  const pos2 = `${scenario}/scmoe-pos2`, top2 = `${scenario}/top2`;
  const lines = (["train", "infer"] as const).flatMap((kind) => {
    const pre = kind === "train" ? "" : "infer_";
    const step = value(pos2, `${kind}_step_ms`), step2 = value(top2, `${kind}_step_ms`);
    const exposed = value(pos2, `${pre}exposed_ms`), exposed2 = value(top2, `${pre}exposed_ms`);
    if (![step, step2, exposed, exposed2].every(Number.isFinite)) return [];
    const hidden = exposed2 - exposed;
    const skew = value(top2, `${pre}exposed_ms_with_skew`) - exposed2 -
      (value(pos2, `${pre}exposed_ms_with_skew`) - exposed);
    const skewPart = Number.isFinite(skew)
      ? `, ${formatFigure(skew)} ms waits for the later rank to issue (skew)`
      : "";
    const elsewhere = step2 - step - hidden - (Number.isFinite(skew) ? skew : 0);
    const byHiding = step2 / (step2 - hidden);
    return [
      `- ${kind === "train" ? "Training" : "Inference"}: ${formatFigure(step2 - step)} ms saved ` +
      `per step, ${formatFigure(hidden)} ms of it communication hidden${skewPart} and ` +
      `${formatFigure(elsewhere)} ms elsewhere: hiding alone gives ${formatFigure(byHiding)}x ` +
      `(top-2's step less ${formatFigure(hidden)} ms), the rest ` +
      `${formatFigure((step2 - hidden) / step)}x ` +
      `(${formatFigure(step2 / step)}x in all).`,
    ];
  });
  return lines.length === 0 ? [] : [
    "Where Pos-2's speed-up comes from (medians; communication hidden = top-2's exposed " +
    "communication less Pos-2's, from the last rank's issue of each all-to-all; skew = the " +
    "same from each rank's own issue, less that; elsewhere = compute, hand-off and " +
    "all-reduce waits):",
    "",
    ...lines,
    "",
  ];
}

/**
 * Markdown lines saying, for each kind of step whose Pos-2 speed-up misses
 * `targets` (`[train, infer]`), where the time goes; none when both are met.
 *
 * @example
 * ```ts
 * import { whyShort } from "./report_why.ts";
 * const rows: Record<string, number> = { "pcie/scmoe-pos2 train_speedup": 2 };
 * whyShort((c, m) => rows[`${c} ${m}`] ?? NaN, "pcie", [1.43, NaN]); // []
 * ```
 */
export function whyShort(value: RowValue, scenario: string, targets: number[]): string[] {
  const pos2 = `${scenario}/scmoe-pos2`, top2 = `${scenario}/top2`;
  const lines: string[] = [];
  for (const [i, kind] of (["train", "infer"] as const).entries()) {
    const pre = kind === "train" ? "" : "infer_";
    const speedup = value(pos2, `${kind}_speedup`);
    if (!(speedup < targets[i])) continue;
    const both = (metric: string) => [value(pos2, metric), value(top2, metric)];
    const [step, step2] = both(`${kind}_step_ms`);
    const [compute, compute2] = both(`${pre}block_compute_ms`);
    const [comm, comm2] = both(`${pre}block_comm_ms`);
    const [exposed, exposed2] = both(`${pre}exposed_ms`);
    const [handoff, handoff2] = both(`${pre}handoff_ms`);
    const [wait, wait2] = kind === "train" ? both("allreduce_wait_ms") : [0, 0];
    const rest = step - compute - exposed - handoff - wait,
      rest2 = step2 - compute2 - exposed2 - handoff2 - wait2;
    const bound = value(pos2, `${kind}_speedup_bound`);
    const pair = (a: number, b: number) => `${formatFigure(a)} vs ${formatFigure(b)} ms`;
    const parts = [
      `MoE block compute ${pair(compute, compute2)}`,
      `its communication ${pair(comm, comm2)}, of which exposed ${pair(exposed, exposed2)}`,
      `hand-off of results to the compute thread ${pair(handoff, handoff2)}`,
      ...(kind === "train" ? [`dense-gradient all-reduce wait ${pair(wait, wait2)}`] : []),
      `the rest of the step (dense block, embedding, head${
        kind === "train" ? ", backward bookkeeping" : ""
      }) ${pair(rest, rest2)}`,
    ];
    const verdict = bound < targets[i]
      ? `Even with its MoE block at max(compute, communication) Pos-2 would reach only ` +
        `${
          formatFigure(bound)
        }x, so hiding more communication cannot close the gap here: the step's ` +
        `compute (the block's and the rest) sets it.`
      : `Its bound (the MoE block at max(compute, communication)) is ${
        formatFigure(bound)
      }x, so the ` +
        `shortfall is in the measured step: ${
          formatFigure(exposed)
        } ms of exposed communication and ` +
        `block compute ${formatFigure(compute - compute2)} ms longer than top-2's.`;
    lines.push(
      `- ${kind === "train" ? "Training" : "Inference"}: Pos-2 ${formatFigure(speedup)}x vs ` +
        `${targets[i]}x. Step ${pair(step, step2)} (Pos-2 vs top-2, medians): ` +
        parts.join("; ") + `. ${verdict} ${ceilingText(step2, exposed2, targets[i])}`,
    );
  }
  return lines.length === 0
    ? []
    : ["Why Pos-2 falls short here, from the traced steps:", "", ...lines, ""];
}
