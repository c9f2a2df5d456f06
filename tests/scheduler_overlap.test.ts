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

Deno.test("overlap: ScMoE Pos-2 hides its all-to-alls behind the window; serial exposes them", async () => {
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
  const perRank = await runOnRanks(cases, { link: { bandwidthBytesPerS: 8e6, latencyS: 2e-4 } });
  const sum = (c: number, pick: (r: (typeof perRank)[0][0]["reports"][0]) => number) =>
    perRank.reduce((s, r) => s + r[c].reports.slice(FROM).reduce((t, x) => t + pick(x), 0), 0);
  const [overlap, serial] = [0, 1].map((c) => ({
    comm: sum(c, (r) => r.commMs),
    exposed: sum(c, (r) => r.exposedMs),
    window: sum(c, (r) => r.windowMs),
  }));
  const figures = JSON.stringify({ overlap, serial });
  ok(
    overlap.comm > 0 && overlap.comm < overlap.window,
    `communication shorter than the window: ${figures}`,
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
