/**
 * What a step's overlap looked like, measured: the timed ops of each rank
 * (compute ops and waits on the compute thread, collectives on the
 * communication thread) and, per MoE block, the figures with which the ScMoE
 * paper (Cai et al., "Shortcut-connected Expert Parallelism for Accelerating
 * Mixture-of-Experts", arXiv:2404.05019) bounds the overlap:
 *
 * - `computeMs`: the block's compute ops (window backbone, gate, experts,
 *   output), and any other op the compute thread ran inside the block's span
 *   (the dense-gradient buckets' copies)
 * - `commMs`: its all-to-alls in flight (issue to completion on the comm
 *   thread; time with several in flight, as pipelined chunks, counts once)
 * - `exposedMs`: time the compute thread waited on one of them while it was in
 *   flight (see {@linkcode alignCollectives} for when that starts)
 * - `handoffMs`: time the compute thread went on waiting after one completed
 *   on the comm thread, until the result reached it (thread hand-off, not
 *   communication: in neither `commMs` nor `exposedMs`)
 * - `skewMs`: time the compute thread waited on one before it started (with
 *   collectives timed from the last rank's issue, {@linkcode alignCollectives}:
 *   waiting for a slower rank to issue its part)
 * - `overheadMs`: block time on the compute thread in neither a compute op
 *   nor a wait (scheduling: awaits, bookkeeping, garbage collection, the
 *   thread preempted)
 * - `exposedOverBoundMs`: exposed communication beyond what the bound
 *   leaves exposed (`max(0, comm - compute)` per pass)
 * - `spanMs`: measured block time (first op start to last op end)
 * - `hiddenFraction = 1 - exposed / comm`
 * - `eta = (T_ser - T_meas) / (T_ser - T_bound)` with `T_ser = compute + comm`
 *   and `T_bound = max(compute, comm)` per pass
 *
 * Where `T_meas` stands above the bound, exactly (per pass, so summed too):
 * `spanMs - boundMs = exposedOverBoundMs + handoffMs + skewMs + overheadMs`
 * ({@linkcode boundGap}).
 *
 * @module
 */

/** One timed interval of a run, times as `nowMs()` of `collectives/link.ts`. */
export interface TimedOp {
  /** The step: a compute op, a collective, or (for a wait) the collective waited on. */
  name: string;
  /**
   * `op`: a step run on the compute thread; `wait`: the compute thread idle
   * until collective `name` resolved; `comm`: collective `name` in flight,
   * from issue to completion.
   */
  kind: "op" | "wait" | "comm";
  /** Forward or backward pass. */
  phase: "fwd" | "bwd";
  /** Start. */
  startMs: number;
  /** End. */
  endMs: number;
  /** Collectives: bytes this rank sent to other ranks. */
  bytes?: number;
}

/** Summable measurements of one MoE block (or a sum of blocks) in one or more passes. */
export interface Measured {
  /** Compute ops of the block. */
  computeMs: number;
  /** All-to-alls of the block in flight, issue to completion. */
  commMs: number;
  /** Compute-thread time spent waiting on them while in flight. */
  exposedMs: number;
  /** Compute-thread time spent waiting on them after they completed (result hand-off). */
  handoffMs: number;
  /** Compute-thread time spent waiting on them before they started (a later rank's issue). */
  skewMs: number;
  /** Compute-thread time in the block in neither a compute op nor a wait. */
  overheadMs: number;
  /** Exposed time beyond the bound's `max(0, comm - compute)`, per pass. */
  exposedOverBoundMs: number;
  /** Measured block time. */
  spanMs: number;
  /** The overlap window's backbone ops. */
  windowMs: number;
  /** `max(compute, comm)` per pass, summed. */
  boundMs: number;
}

/** Measurements with the derived figures. */
export interface OverlapFigures extends Measured {
  /** `1 - exposed / comm`, or null without communication. */
  hiddenFraction: number | null;
  /** `(T_ser - T_meas) / (T_ser - T_bound)`, or null where `T_ser = T_bound`. */
  eta: number | null;
}

/** One MoE block's figures: forward and backward together, and each pass. */
export interface BlockOverlap extends OverlapFigures {
  /** Block index. */
  block: number;
  /** The forward pass. */
  forward: OverlapFigures;
  /** The backward pass (null for forward-only runs). */
  backward: OverlapFigures | null;
}

/** Where each step of a scheduled program belongs: its MoE block and window ops. */
export interface BlockLayout {
  /** Step name to MoE block, for every step inside a block's span. */
  blockOf: Map<string, number>;
  /** Step names of each block's overlap windows (backbone ops). */
  windowOps: Map<number, Set<string>>;
}

/** Adds measurements and derives the figures. */
export function sumFigures(parts: Measured[]): OverlapFigures {
  const m: Measured = {
    computeMs: 0,
    commMs: 0,
    exposedMs: 0,
    handoffMs: 0,
    skewMs: 0,
    overheadMs: 0,
    exposedOverBoundMs: 0,
    spanMs: 0,
    windowMs: 0,
    boundMs: 0,
  };
  for (const p of parts) {
    for (const k of Object.keys(m) as (keyof Measured)[]) m[k] += p[k];
  }
  const serial = m.computeMs + m.commMs;
  return {
    ...m,
    hiddenFraction: m.commMs > 0 ? 1 - m.exposedMs / m.commMs : null,
    eta: serial - m.boundMs > 1e-9 ? (serial - m.spanMs) / (serial - m.boundMs) : null,
  };
}

/** Where a block's measured time stands above its bound: the parts of `spanMs - boundMs`, in ms. */
export interface BoundGap {
  /** `spanMs - boundMs`: the sum of the rest. */
  totalMs: number;
  /** Communication exposed beyond what the bound leaves exposed. */
  exposedMs: number;
  /** Results handed from the communication thread to the compute thread. */
  handoffMs: number;
  /** Waits for a later rank to issue its part. */
  skewMs: number;
  /** Compute-thread time in neither a compute op nor a wait (scheduling overhead). */
  overheadMs: number;
}

/**
 * The parts of `spanMs - boundMs` of figures (a pass, a block or a sum):
 * exposed communication beyond the bound, hand-off, skew and overhead,
 * which add up to it exactly.
 *
 * @example
 * ```ts
 * import { boundGap, sumFigures } from "./overlap_report.ts";
 * const f = sumFigures([{
 *   computeMs: 10, commMs: 6, exposedMs: 1, handoffMs: 0.5, skewMs: 2, overheadMs: 1.5,
 *   exposedOverBoundMs: 1, spanMs: 15, windowMs: 8, boundMs: 10,
 * }]);
 * boundGap(f); // { totalMs: 5, exposedMs: 1, handoffMs: 0.5, skewMs: 2, overheadMs: 1.5 }
 * ```
 */
export function boundGap(f: Measured): BoundGap {
  return {
    totalMs: f.spanMs - f.boundMs,
    exposedMs: f.exposedOverBoundMs,
    handoffMs: f.handoffMs,
    skewMs: f.skewMs,
    overheadMs: f.overheadMs,
  };
}

/** One MoE block of a group of ranks, as the group's step sees it. */
export interface GroupFigures {
  /** The slowest rank's compute, per pass, summed. */
  computeMs: number;
  /** The group's exchanges (last issue to last completion), per pass, summed. */
  commMs: number;
  /** The longest rank's block time, per pass, summed. */
  spanMs: number;
  /** `max(compute, comm)` of the group per pass, summed. */
  boundMs: number;
  /** `(T_ser - T_meas) / (T_ser - T_bound)` of the group, or null where `T_ser = T_bound`. */
  eta: number | null;
  /** `spanMs - boundMs` in parts, on the longest rank of each pass. */
  gap: BoundGap;
  /** The slowest rank's compute less the fastest's, per pass, summed (in the bound, not the gap). */
  imbalanceMs: number;
}

/**
 * An MoE block's figures for the group of ranks, per pass and summed: the
 * group's step waits for its slowest rank, and an all-to-all takes the
 * group from the last rank's issue to the last rank's completion. With
 * `T_ser = compute + comm`, `T_bound = max(compute, comm)` of the slowest
 * rank's compute and the group's exchange time, and `T_meas` the longest
 * rank's block time, per pass. A rank's own eta cannot say this: the rank
 * that issues last finds its peers' bytes already there, its transfer near
 * 0 and its eta 0 / 0, noise.
 *
 * `transfer[r]` is rank r's block with collectives timed by
 * `alignCollectives` (for its waits' parts), `exchange[r]` the same block
 * with them timed by `spanCollectives` (for the exchanges' time). The gap
 * `spanMs - boundMs` is split on the longest rank r* of each pass, exactly:
 * exposed communication beyond the bound's `max(0, comm - compute)`,
 * hand-off, overhead, and skew: r*'s waits for a later rank less what the
 * ranks' compute imbalance accounts for (the slowest rank's compute is in
 * the bound; negative when r* waited less than that).
 *
 * @example
 * ```ts
 * import { blockFigures, groupFigures, type TimedOp } from "./overlap_report.ts";
 * const layout = { blockOf: new Map([["w", 1], ["x", 1]]), windowOps: new Map([[1, new Set(["w"])]]) };
 * const op = (name: string, kind: TimedOp["kind"], startMs: number, endMs: number): TimedOp =>
 *   ({ name, kind, phase: "fwd", startMs, endMs });
 * // 10 ms of compute on each rank hide a 4 ms exchange; its result is taken 1 ms late.
 * const rank = [op("x", "comm", 0, 4), op("w", "op", 0, 10), op("x", "wait", 10, 11)];
 * const [b] = blockFigures(rank, layout);
 * groupFigures([b, b], [b, b]).eta; // 0.75: (14 - 11) / (14 - 10)
 * ```
 */
export function groupFigures(transfer: BlockOverlap[], exchange: BlockOverlap[]): GroupFigures {
  const sum: GroupFigures = {
    computeMs: 0,
    commMs: 0,
    spanMs: 0,
    boundMs: 0,
    eta: null,
    gap: { totalMs: 0, exposedMs: 0, handoffMs: 0, skewMs: 0, overheadMs: 0 },
    imbalanceMs: 0,
  };
  for (const pass of ["forward", "backward"] as const) {
    const ranks = transfer.map((b) => pass === "forward" ? b.forward : b.backward);
    if (ranks.some((f) => f === null)) continue;
    const figs = ranks as OverlapFigures[];
    const commMs = Math.max(
      ...exchange.map((b) => (pass === "forward" ? b.forward : b.backward)?.commMs ?? 0),
    );
    const computes = figs.map((f) => f.computeMs);
    const computeMs = Math.max(...computes);
    const longest = figs.reduce((a, f) => f.spanMs > a.spanMs ? f : a);
    const boundMs = Math.max(computeMs, commMs);
    sum.computeMs += computeMs;
    sum.commMs += commMs;
    sum.spanMs += longest.spanMs;
    sum.boundMs += boundMs;
    sum.imbalanceMs += computeMs - Math.min(...computes);
    sum.gap.totalMs += longest.spanMs - boundMs;
    sum.gap.exposedMs += longest.exposedMs - (boundMs - computeMs);
    sum.gap.handoffMs += longest.handoffMs;
    sum.gap.overheadMs += longest.overheadMs;
    sum.gap.skewMs += longest.skewMs - (computeMs - longest.computeMs);
  }
  const serial = sum.computeMs + sum.commMs;
  sum.eta = serial - sum.boundMs > 1e-9 ? (serial - sum.spanMs) / (serial - sum.boundMs) : null;
  return sum;
}

/** Time covered by at least one of `ops`. */
function unionMs(ops: TimedOp[]): number {
  const sorted = [...ops].sort((a, b) => a.startMs - b.startMs);
  let total = 0, end = -Infinity;
  for (const o of sorted) {
    total += Math.max(0, o.endMs - Math.max(o.startMs, end));
    end = Math.max(end, o.endMs);
  }
  return total;
}

/**
 * Per MoE block figures from a run's timed ops (blocks that did not run are
 * left out).
 *
 * @example
 * ```ts
 * import { blockFigures } from "./overlap_report.ts";
 * const layout = { blockOf: new Map([["w", 1], ["x", 1]]), windowOps: new Map([[1, new Set(["w"])]]) };
 * const [b] = blockFigures([
 *   { name: "x", kind: "comm", phase: "fwd", startMs: 0, endMs: 4 },
 *   { name: "w", kind: "op", phase: "fwd", startMs: 0, endMs: 5 },
 *   { name: "x", kind: "wait", phase: "fwd", startMs: 5, endMs: 5 },
 * ], layout);
 * b.hiddenFraction; // 1
 * ```
 */
export function blockFigures(ops: TimedOp[], layout: BlockLayout): BlockOverlap[] {
  const blocks = [...new Set(layout.blockOf.values())].sort((a, b) => a - b);
  return blocks.flatMap((block) => {
    const pass = (phase: "fwd" | "bwd"): OverlapFigures | null => {
      const mine = ops.filter((o) => o.phase === phase && layout.blockOf.get(o.name) === block);
      if (mine.length === 0) return null;
      const total = (kind: TimedOp["kind"], keep = (_: TimedOp) => true) =>
        mine.filter((o) => o.kind === kind && keep(o)).reduce((s, o) => s + o.endMs - o.startMs, 0);
      const thread = mine.filter((o) => o.kind !== "comm");
      const spanStart = Math.min(...thread.map((o) => o.startMs));
      const spanEnd = Math.max(...thread.map((o) => o.endMs));
      // Other compute the thread ran inside the block (no block's step: the dense-gradient
      // buckets' copies) is the block's too: the bound must leave time for it.
      const inside = ops.filter((o) =>
        o.phase === phase && o.kind === "op" && !layout.blockOf.has(o.name) &&
        o.startMs >= spanStart && o.endMs <= spanEnd
      );
      const computeMs = total("op") + inside.reduce((s, o) => s + o.endMs - o.startMs, 0);
      const comms = mine.filter((o) => o.kind === "comm");
      const commMs = unionMs(comms);
      const commOf = new Map(comms.map((o) => [o.name, o]));
      let exposedMs = 0, handoffMs = 0, skewMs = 0;
      for (const w of mine.filter((o) => o.kind === "wait")) {
        const c = commOf.get(w.name);
        const [start, end] = c ? [c.startMs, c.endMs] : [-Infinity, Infinity];
        exposedMs += Math.max(0, Math.min(w.endMs, end) - Math.max(w.startMs, start));
        handoffMs += Math.max(0, w.endMs - Math.max(w.startMs, end));
        skewMs += Math.max(0, Math.min(w.endMs, start) - w.startMs);
      }
      const spanMs = thread.length ? spanEnd - spanStart : 0;
      const boundMs = Math.max(computeMs, commMs);
      return sumFigures([{
        computeMs,
        commMs,
        exposedMs,
        handoffMs,
        skewMs,
        overheadMs: spanMs - computeMs - total("wait"),
        exposedOverBoundMs: exposedMs - (boundMs - computeMs),
        spanMs,
        windowMs: total("op", (o) => layout.windowOps.get(block)?.has(o.name) ?? false),
        boundMs,
      }]);
    };
    const forward = pass("fwd");
    if (!forward) return [];
    const backward = pass("bwd");
    return [{
      block,
      ...sumFigures(backward ? [forward, backward] : [forward]),
      forward,
      backward,
    }];
  });
}

/**
 * The same runs of every rank (`ranks[r]`: rank r's timed ops of one step),
 * with each collective timed as transfer only: from the moment the last rank
 * issued it (before that, a rank waits for a slower rank: skew, not
 * communication) to the moment this rank completed it (what it waits for
 * has then arrived; a later completion on another rank is that rank's, and
 * this rank computes meanwhile). A wait on it then counts as exposed only
 * between its start and end (see {@linkcode blockFigures}).
 *
 * @example
 * ```ts
 * import { alignCollectives } from "./overlap_report.ts";
 * const comm = (startMs: number, endMs: number) =>
 *   ({ name: "x", kind: "comm" as const, phase: "fwd" as const, startMs, endMs });
 * alignCollectives([[comm(1, 9)], [comm(4, 5)]])[0][0]; // starts at 4, ends at 9
 * ```
 */
export function alignCollectives(ranks: TimedOp[][]): TimedOp[][] {
  const spans = collectiveSpans(ranks);
  return ranks.map((ops) =>
    ops.map((o) =>
      o.kind === "comm" ? { ...o, startMs: Math.min(spans.get(spanKey(o))!.issue, o.endMs) } : o
    )
  );
}

/**
 * The same runs of every rank, with each collective timed as the group's
 * exchange: from the moment the last rank issued it to the moment the last
 * rank completed it, on every rank. Summed over a step's collectives, this
 * is what the exchanges took whichever rank was late to each one, where
 * {@linkcode alignCollectives} lets a late rank find its peers' bytes already
 * on the wire.
 *
 * @example
 * ```ts
 * import { spanCollectives } from "./overlap_report.ts";
 * const comm = (startMs: number, endMs: number) =>
 *   ({ name: "x", kind: "comm" as const, phase: "fwd" as const, startMs, endMs });
 * spanCollectives([[comm(1, 5)], [comm(4, 9)]])[0][0]; // starts at 4, ends at 9
 * ```
 */
export function spanCollectives(ranks: TimedOp[][]): TimedOp[][] {
  const spans = collectiveSpans(ranks);
  return ranks.map((ops) =>
    ops.map((o) => {
      if (o.kind !== "comm") return o;
      const { issue, end } = spans.get(spanKey(o))!;
      return { ...o, startMs: issue, endMs: end };
    })
  );
}

/** Which collective a timed op is: its phase and name, alike on every rank. */
const spanKey = (o: TimedOp) => `${o.phase} ${o.name}`;

/** Per collective (`spanKey`), the last issue and the last completion over ranks. */
function collectiveSpans(ranks: TimedOp[][]): Map<string, { issue: number; end: number }> {
  const spans = new Map<string, { issue: number; end: number }>();
  for (const o of ranks.flat()) {
    if (o.kind !== "comm") continue;
    const span = spans.get(spanKey(o)) ?? { issue: -Infinity, end: -Infinity };
    spans.set(spanKey(o), {
      issue: Math.max(span.issue, o.startMs),
      end: Math.max(span.end, o.endMs),
    });
  }
  return spans;
}

/** The overlap of one run (a training step, an evaluation, a forward pass) on one rank. */
export interface OverlapReport extends OverlapFigures {
  /** Per MoE block; the top-level figures sum them. */
  blocks: BlockOverlap[];
  /** Slot of each gate use's expert computation in its window. */
  slots: Record<string, number>;
  /** Window ops back-propagated before each gate use's expert backward. */
  backwardSlots: Record<string, number>;
  /** Pipelining chunks of each gate use. */
  chunks: Record<string, number>;
  /** Schedule decisions made after this run, with their reasons. */
  decisions: string[];
  /** Wall time of the run on this rank (forward, backward, gradient all-reduce). */
  stepMs: number;
  /** Every timed op, when asked for (`RunOptions.trace`); see `trace.ts`. */
  ops?: TimedOp[];
  /** The blocks and windows of the run's steps, with `ops` (for {@linkcode blockFigures}). */
  layout?: BlockLayout;
}
