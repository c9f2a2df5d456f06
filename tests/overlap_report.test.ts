/**
 * The overlap figures with communication counted as transfer: a collective
 * runs from the last rank's issue to this rank's completion, and a wait
 * counts as exposed only while it runs (before, it is skew: waiting for the
 * slower rank to issue; after, it is the result's hand-off to the compute
 * thread).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  alignCollectives,
  blockFigures,
  boundGap,
  groupFigures,
  spanCollectives,
  sumFigures,
  type TimedOp,
} from "../models/overlap_report.ts";

const op = (name: string, kind: TimedOp["kind"], startMs: number, endMs: number): TimedOp => ({
  name,
  kind,
  phase: "fwd",
  startMs,
  endMs,
});

const layout = {
  blockOf: new Map([["w", 1], ["x", 1]]),
  windowOps: new Map([[1, new Set(["w"])]]),
};

Deno.test("alignCollectives: a collective runs from the last issue to this rank's completion", () => {
  const ranks = [
    [op("x", "comm", 0, 10), op("w", "op", 0, 4)],
    [op("x", "comm", 6, 7), op("w", "op", 0, 6)],
  ];
  const aligned = alignCollectives(ranks);
  deepEqual(aligned.map((ops) => [ops[0].startMs, ops[0].endMs]), [[6, 10], [6, 7]]);
  deepEqual(aligned[0][1], ranks[0][1], "compute ops stay as they are");
});

Deno.test("spanCollectives: the group's exchanges, whichever rank was late to each", () => {
  // Rank 1 is late to x and finds rank 0's bytes there; rank 0 is late to y, likewise.
  const ranks = [
    [op("x", "comm", 0, 10), op("y", "comm", 25, 26)],
    [op("x", "comm", 6, 7), op("y", "comm", 20, 30)],
  ];
  const twoExchanges = { ...layout, blockOf: new Map([["x", 1], ["y", 1]]) };
  const commOf = (aligned: TimedOp[][]) =>
    aligned.map((ops) => blockFigures(ops, twoExchanges)[0].commMs);
  // Per rank from the last issue: 4 + 1 and 1 + 5, so no rank's sum is the 4 + 5 the group spent.
  deepEqual(commOf(alignCollectives(ranks)), [5, 6]);
  deepEqual(commOf(spanCollectives(ranks)), [9, 9]);
  deepEqual(spanCollectives(ranks)[1].map((o) => [o.startMs, o.endMs]), [[6, 10], [25, 30]]);
});

Deno.test("blockFigures: a wait before the transfer began is skew, not exposed communication", () => {
  // Rank 0 computed 4 ms, then waited 6 ms: 2 ms for rank 1 to issue, 4 ms of transfer.
  const ops = [op("w", "op", 0, 4), op("x", "comm", 6, 10), op("x", "wait", 4, 10)];
  const [b] = blockFigures(ops, layout);
  equal(b.commMs, 4);
  equal(b.exposedMs, 4);
  equal(b.handoffMs, 0);
  equal(b.hiddenFraction, 0);
  // Unaligned (issued at 0), the same wait is all exposed, of 10 ms in flight.
  const [issued] = blockFigures([ops[0], op("x", "comm", 0, 10), ops[2]], layout);
  equal(issued.exposedMs, 6);
  equal(issued.hiddenFraction, 0.4);
});

Deno.test("blockFigures on aligned ops: serial exchanges hide nothing, whichever rank completes first", () => {
  // Each rank waits for its all-to-all, then runs its experts `e`; rank 0's part arrives first.
  // Each result reaches the compute thread 0.5 ms after the comm thread completed: hand-off.
  const ranks = [
    [op("w", "op", 0, 4), op("x", "comm", 4, 7), op("x", "wait", 4, 7.5), op("e", "op", 7.5, 12)],
    [
      op("w", "op", 0, 5),
      op("x", "comm", 5, 10),
      op("x", "wait", 5, 10.5),
      op("e", "op", 10.5, 15),
    ],
  ];
  const withExperts = { ...layout, blockOf: new Map([...layout.blockOf, ["e", 1]]) };
  const figures = alignCollectives(ranks).map((ops) => blockFigures(ops, withExperts)[0]);
  deepEqual(
    figures.map((b) => [b.commMs, b.exposedMs, b.handoffMs, b.hiddenFraction]),
    [[2, 2, 0.5, 0], [5, 5, 0.5, 0]],
  );
});

Deno.test("boundGap: where the block's time above its bound goes, worked by hand", () => {
  // One MoE block's forward on 2 ranks: gate g, window op w, the dispatch x, experts e.
  const layout3 = {
    blockOf: new Map([["g", 1], ["w", 1], ["x", 1], ["e", 1]]),
    windowOps: new Map([[1, new Set(["w"])]]),
  };
  const ranks = [
    [
      // Rank 0 issues x at 1, runs w until 2, bookkeeping until 2.5, then waits until 10:
      // rank 1 issues at 3 (0.5 ms of skew), rank 0's part arrives at 9 (6 ms exposed), and
      // its compute thread takes the result at 10 (1 ms of hand-off). Experts until 12.
      op("g", "op", 0, 1),
      op("x", "comm", 1, 9),
      op("w", "op", 1, 2),
      op("x", "wait", 2.5, 10),
      op("e", "op", 10, 12),
    ],
    [
      // Rank 1's gate ends at 3 and it issues x then; its window op runs until 8, by which
      // time the rows have arrived (at 8); it takes them 0.2 ms later.
      op("g", "op", 0, 3),
      op("x", "comm", 3, 8),
      op("w", "op", 3, 8),
      op("x", "wait", 8, 8.2),
      op("e", "op", 8.2, 10.2),
    ],
  ];
  const [b0, b1] = alignCollectives(ranks).map((ops) => blockFigures(ops, layout3)[0]);
  // Rank 0: compute 1 + 1 + 2 = 4, transfer 3..9 = 6, bound 6, span 12: 6 ms above the bound,
  // of which 2 ms of the 6 exposed the bound itself leaves (comm - compute), so 4 beyond it.
  deepEqual([b0.computeMs, b0.commMs, b0.boundMs, b0.spanMs], [4, 6, 6, 12]);
  deepEqual(boundGap(b0), { totalMs: 6, exposedMs: 4, handoffMs: 1, skewMs: 0.5, overheadMs: 0.5 });
  // Rank 1: compute 3 + 5 + 2 = 10, transfer 3..8 = 5, bound 10, span 10.2: all hand-off.
  deepEqual([b1.computeMs, b1.commMs, b1.boundMs, b1.spanMs], [10, 5, 10, 10.2]);
  const g1 = boundGap(b1);
  deepEqual([g1.exposedMs, g1.skewMs], [0, 0]);
  ok(Math.abs(g1.totalMs - 0.2) < 1e-9 && Math.abs(g1.handoffMs - 0.2) < 1e-9);
  ok(Math.abs(g1.overheadMs) < 1e-9);
  // eta = (T_ser - T_meas) / (T_ser - T_bound): (10 - 12) / (10 - 6) and (15 - 10.2) / (15 - 10).
  equal(b0.eta, -0.5);
  ok(Math.abs(b1.eta! - 0.96) < 1e-9);
  // The group: the slowest rank's compute (10), the exchange from the last issue (3) to the
  // last completion (9), the longest block (rank 0's 12 ms).
  const [e0, e1] = spanCollectives(ranks).map((ops) => blockFigures(ops, layout3)[0]);
  const g = groupFigures([b0, b1], [e0, e1]);
  deepEqual([g.computeMs, g.commMs, g.boundMs, g.spanMs, g.imbalanceMs], [10, 6, 10, 12, 6]);
  ok(Math.abs(g.eta! - 4 / 6) < 1e-9, `eta ${g.eta}: (16 - 12) / (16 - 10)`);
  // Split on rank 0: 6 ms exposed (none left exposed by the bound), 1 ms hand-off, 0.5 ms
  // overhead, and 0.5 ms of waits for rank 1 less the 6 ms by which rank 1 computes longer.
  deepEqual(g.gap, { totalMs: 2, exposedMs: 6, handoffMs: 1, skewMs: -5.5, overheadMs: 0.5 });
  // The parts add up to the whole, for a sum of blocks too.
  const both = boundGap(sumFigures([b0, b1]));
  ok(Math.abs(both.totalMs - 6.2) < 1e-9);
  const parts = both.exposedMs + both.handoffMs + both.skewMs + both.overheadMs;
  ok(Math.abs(parts - both.totalMs) < 1e-9, `${parts} vs ${both.totalMs}`);
});
