/**
 * The communication stream really progresses while the compute stream
 * runs, measured: 2 ranks as Workers, each with its communication worker,
 * over a shaped link; ScMoE Pos-2's all-to-alls complete during the
 * window's compute ops, and the compute thread waits on them far less than
 * when the same step runs serially (standard expert parallelism).
 */
import { ok } from "node:assert/strict";
import { type OverlapCase, runOnRanks } from "../bench/overlap.ts";
import { alignCollectives, type TimedOp } from "../models/overlap_report.ts";
import type { LinkModel } from "../collectives/types.ts";

const MODEL = { nLayer: 2, moeEvery: 2, nEmbd: 128, nHead: 4, nExperts: 4, blockSize: 64 };
const STEPS = 6, FROM = 4; // the planner decides after 3 steps

/**
 * Time the MoE all-to-alls of a step were in flight while a compute op of
 * the same rank ran, and their total; `ops` aligned by `alignCollectives`, so
 * an all-to-all counts from the moment both ranks had issued it.
 */
function concurrent(ops: TimedOp[]): { during: number; total: number } {
  const compute = ops.filter((o) => o.kind === "op");
  const comm = ops.filter((o) => o.kind === "comm" && o.name.includes(".moe.gate"));
  let during = 0;
  for (const c of comm) {
    for (const o of compute) {
      during += Math.max(0, Math.min(c.endMs, o.endMs) - Math.max(c.startMs, o.startMs));
    }
  }
  return { during, total: comm.reduce((s, c) => s + c.endMs - c.startMs, 0) };
}

/** Figures of one case summed over both ranks and the measured steps. */
interface Figures {
  /** All-to-all time. */
  comm: number;
  /** Time the compute thread waited on it. */
  exposed: number;
  /** Compute the all-to-alls can hide behind. */
  window: number;
}

/**
 * The figures of both cases and their traces, measured over one link, and the
 * precondition: the overlap case's all-to-all time as a share of its window.
 */
async function measure(link: LinkModel) {
  const base = {
    model: { ...MODEL, variant: "scmoe" as const, pos: 2 as const },
    steps: STEPS,
    rows: 4,
    seq: 64,
  };
  const cases: OverlapCase[] = [
    { ...base, name: "overlap", schedule: {}, traceFrom: FROM },
    { ...base, name: "serial", schedule: { overlap: false }, traceFrom: FROM },
  ];
  const perRank = await runOnRanks(cases, { link });
  type Report = (typeof perRank)[0][0]["reports"][0];
  const figures = (reports: Report[]): Figures => {
    const sum = (pick: (r: Report) => number) => reports.reduce((t, x) => t + pick(x), 0);
    return {
      comm: sum((r) => r.commMs),
      exposed: sum((r) => r.exposedMs),
      window: sum((r) => r.windowMs),
    };
  };
  const [overlap, serial] = [0, 1].map((c) =>
    figures(perRank.flatMap((r) => r[c].reports.slice(FROM)))
  );
  // Summed over the ranks: one rank's all-to-all also counts the wait for a late peer, so a
  // single rank's share says as much about skew as about the link.
  const commShare = overlap.comm / overlap.window;
  return { overlap, serial, perRank, commShare };
}

/**
 * The link the test starts from. At this rate, in about 25 runs on a 2-core
 * machine shared with other jobs, the overlap case's all-to-alls took 0.45 to
 * 1.06 of its window (a fresh-clone CI run failed at 1.03: 304 ms against 294).
 */
const LINK: LinkModel = { bandwidthBytesPerS: 8e6, latencyS: 2e-4 };
/**
 * Precondition: all-to-all time below this share of the window, room to hide
 * it (at 0.72 one run still left 0.38 of the all-to-all time exposed).
 */
const MAX_COMM_SHARE = 0.75;
/** Share the link is re-rated to when the precondition misses. */
const TARGET_COMM_SHARE = 0.5;
/** Measurements at most: the first link and up to three more (re-rated, or taken again). */
const TRIES = 4;

/** The overlap case hides most of its all-to-all time, far more than serial. */
function hidden({ overlap, serial }: { overlap: Figures; serial: Figures }): boolean {
  return overlap.exposed < 0.5 * overlap.comm &&
    overlap.exposed / overlap.comm < 0.6 * (serial.exposed / serial.comm);
}

Deno.test("overlap: ScMoE Pos-2 hides its all-to-alls behind the window; serial exposes them", async () => {
  // The precondition is measured, not assumed: a busy machine stretches the all-to-alls (the
  // comm workers wait for a core) further than the compute. When they take too much of the
  // window, a faster link is derived from what was measured and everything is measured again.
  // A machine so busy that the comm workers get no core during the window can also stall one
  // measurement of the overlap itself: that is measured again too. Broken overlap fails every
  // try; the properties below are asserted on the last measurement.
  let link = LINK;
  let m = await measure(link);
  const tries = [{ bandwidthBytesPerS: link.bandwidthBytesPerS, commShare: m.commShare }];
  for (let t = 1; t < TRIES; t++) {
    const precondition = m.commShare > 0 && m.commShare < MAX_COMM_SHARE;
    if (precondition && hidden(m)) break;
    if (!precondition) {
      const faster = Math.min(4, Math.max(1.5, m.commShare / TARGET_COMM_SHARE));
      link = { ...link, bandwidthBytesPerS: link.bandwidthBytesPerS * faster };
    }
    m = await measure(link);
    tries.push({ bandwidthBytesPerS: link.bandwidthBytesPerS, commShare: m.commShare });
  }
  const { overlap, serial, perRank } = m;
  const figures = JSON.stringify({ overlap, serial, tries });
  if (tries.length > 1) console.log(`measured again: ${JSON.stringify(tries)}`);
  ok(
    m.commShare > 0 && m.commShare < MAX_COMM_SHARE,
    `communication shorter than the window after ${tries.length} links: ${figures}`,
  );
  ok(serial.exposed > 0.7 * serial.comm, `serial waits on its communication: ${figures}`);
  // Margins are wide: two ranks share two cores with the test runner and the comm workers.
  ok(overlap.exposed < 0.5 * overlap.comm, `overlap hides most of it: ${figures}`);
  ok(
    overlap.exposed / overlap.comm < 0.6 * (serial.exposed / serial.comm),
    `a far smaller exposed share than serial: ${figures}`,
  );
  // Over both ranks and the measured steps: one rank's step can wait on a late peer, whose
  // bytes cannot move before it sends them, whatever the schedule.
  const [overlapDuring, serialDuring] = [0, 1].map((c) => {
    const steps = perRank[0][c].reports.slice(FROM).map((_, i) => FROM + i);
    const ranks = steps.flatMap((s) => alignCollectives(perRank.map((r) => r[c].reports[s].ops!)));
    const measured = ranks.map(concurrent);
    return measured.reduce((s, m) => s + m.during, 0) / measured.reduce((s, m) => s + m.total, 0);
  });
  const shares = `overlap ${overlapDuring.toFixed(3)}, serial ${serialDuring.toFixed(3)}`;
  ok(overlapDuring > 0.5, `bytes moved while compute ran: ${shares}`);
  ok(serialDuring < 0.2, `serial computes nothing while its bytes move: ${shares}`);
});
