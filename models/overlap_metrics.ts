/**
 * The overlap figures of training steps as `metrics.jsonl` fields: each
 * rank's measured MoE-block figures of a step (`overlap_report.ts`) pooled
 * over the ranks, per block and in all, and a run's summary (medians over
 * its steps). A rank's figures are its own: a wait for a slower rank to
 * issue its part counts as exposed (skew included; `bench overlap` also
 * reports transfer-only figures).
 *
 * @module
 */
import {
  type BlockOverlap,
  type Measured,
  type OverlapReport,
  sumFigures,
  type TimedOp,
} from "./overlap_report.ts";
import { median } from "./stats.ts";

/** One rank's overlap in one training step, as it travels from a rank actor (plain data). */
export interface StepOverlap {
  /** Its MoE blocks' figures, summed. */
  total: Measured;
  /** Each MoE block's figures, forward and backward together. */
  blocks: (Measured & { block: number })[];
  /** Every timed op of the step, when it was traced. */
  ops?: TimedOp[];
}

/** The summable part of figures. */
function measured(f: Measured): Measured {
  const { computeMs, commMs, exposedMs, handoffMs, spanMs, windowMs, boundMs } = f;
  const { skewMs, overheadMs, exposedOverBoundMs } = f;
  return {
    computeMs,
    commMs,
    exposedMs,
    handoffMs,
    skewMs,
    overheadMs,
    exposedOverBoundMs,
    spanMs,
    windowMs,
    boundMs,
  };
}

/** A rank's {@linkcode StepOverlap} from its step's report; `ops` kept when `traced`. */
export function stepOverlap(report: OverlapReport, traced: boolean): StepOverlap {
  return {
    total: measured(report),
    blocks: report.blocks.map((b: BlockOverlap) => ({ block: b.block, ...measured(b) })),
    ...(traced && report.ops ? { ops: report.ops } : {}),
  };
}

/** Metrics fields of figures pooled over `n` ranks: times are per-rank means. */
function fields(parts: Measured[], n: number) {
  const f = sumFigures(parts);
  return {
    compute_ms: f.computeMs / n,
    comm_ms: f.commMs / n,
    exposed_ms: f.exposedMs / n,
    handoff_ms: f.handoffMs / n,
    hidden_fraction: f.hiddenFraction ?? NaN,
    eta: f.eta ?? NaN,
  };
}

/**
 * The `metrics.jsonl` fields of one step from every rank's overlap:
 * `compute_ms`, `comm_ms`, `exposed_ms`, `handoff_ms` (per-rank means), `hidden_fraction`
 * (1 - exposed / comm) and `eta` (against max(compute, comm)) pooled over
 * the ranks, and the same per MoE block in `moe_blocks`. Empty without MoE
 * communication (one rank, or a dense model).
 *
 * @example
 * ```ts
 * import { overlapFields } from "./overlap_metrics.ts";
 * const total = {
 *   computeMs: 10, commMs: 4, exposedMs: 1, handoffMs: 0, skewMs: 0, overheadMs: 0,
 *   exposedOverBoundMs: 1, spanMs: 11, windowMs: 6, boundMs: 10,
 * };
 * overlapFields([{ total, blocks: [{ block: 1, ...total }] }]).hidden_fraction; // 0.75
 * ```
 */
export function overlapFields(ranks: (StepOverlap | undefined)[]): Record<string, unknown> {
  const present = ranks.filter((r): r is StepOverlap => r !== undefined);
  if (present.length === 0 || present.every((r) => r.total.commMs === 0)) return {};
  const n = present.length;
  const blockIds = [...new Set(present.flatMap((r) => r.blocks.map((b) => b.block)))];
  return {
    ...fields(present.map((r) => r.total), n),
    moe_blocks: blockIds.sort((a, b) => a - b).map((block) => ({
      block,
      ...fields(present.flatMap((r) => r.blocks.filter((b) => b.block === block)), n),
    })),
  };
}

/** The median of the finite values, NaN when there are none. */
export function finiteMedian(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? NaN : median(finite);
}

/** A run's overlap: medians over its steps' `hidden_fraction`, `eta` and `handoff_ms`. */
export interface OverlapSummary {
  /** Median hidden fraction. */
  hiddenFraction: number;
  /** Median eta. */
  eta: number;
  /** Median hand-off of results to the compute thread per rank and step, in ms. */
  handoffMs: number;
}

/**
 * Medians of the steps' overlap fields, leaving out the first step (warm-up,
 * profiling) when there are others; null without overlap figures.
 */
export function overlapSummary(records: Record<string, unknown>[]): OverlapSummary | null {
  const withFigures = records.filter((r) => typeof r.hidden_fraction === "number");
  const steps = withFigures.length > 1 ? withFigures.slice(1) : withFigures;
  if (steps.length === 0) return null;
  return {
    hiddenFraction: finiteMedian(steps.map((r) => r.hidden_fraction as number)),
    eta: finiteMedian(steps.map((r) => r.eta as number)),
    handoffMs: finiteMedian(steps.map((r) => r.handoff_ms as number)),
  };
}
