/**
 * One rank's side of the overlap measurements, whatever carries it (a Worker,
 * `overlap_rank.ts`, or a process in a network namespace,
 * `overlap_netns_rank.ts`): runs training steps (or forward-only runs, for
 * `forwardOnly` cases) of the cases it is given on an expert-parallel
 * communicator and reports each step's overlap, case after case or, with
 * `interleave`, step after step across the cases.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Communicator } from "../collectives/types.ts";
import { clockOffsetMs } from "../collectives/clock.ts";
import { createModel, disposeModel, forwardRun, trainStep } from "../models/model.ts";
import { OverlapScheduler } from "../models/scheduler.ts";
import type { OverlapReport } from "../models/overlap_report.ts";
import type { CaseResult, OverlapCase } from "./overlap.ts";

/** Synthetic windows of one rank and step: [rows, seq + 1] to train on, [rows, seq] forward-only. */
function batch(c: OverlapCase, rank: number, step: number) {
  const cols = c.seq + (c.forwardOnly ? 0 : 1);
  let x = (rank * 7919 + step * 104729 + 1) >>> 0;
  const tokens = new Int32Array(c.rows * cols).map(() => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % (c.model.vocabSize ?? 256);
  });
  return { tokens, rows: c.rows, cols };
}

/** `report` with its timed ops moved by `-offsetMs` (onto rank 0's clock). */
function onRank0Clock(report: OverlapReport, offsetMs: number): OverlapReport {
  if (!report.ops || offsetMs === 0) return report;
  const ops = report.ops.map((o) => ({
    ...o,
    startMs: o.startMs - offsetMs,
    endMs: o.endMs - offsetMs,
  }));
  return { ...report, ops };
}

/** One case's model, stepped one step at a time; `finish` disposes it. */
function caseRunner(
  c: OverlapCase,
  comm: Communicator,
  gradComm: Communicator | undefined,
  offsetMs: number,
) {
  const model = createModel(c.model, { rank: comm.rank, size: comm.size, seed: 1 });
  const reports: OverlapReport[] = [];
  const decisions: string[] = [];
  // One schedule per case, kept across its steps (forward-only cases use it for forward passes).
  const scheduler = new OverlapScheduler({
    ...c.schedule,
    log: (line: string) => decisions.push(line),
  });
  const step = async (i: number) => {
    const b = batch(c, comm.rank, i);
    const opts = {
      comm,
      gradComm,
      scheduler,
      trace: c.traceStep === i || i >= (c.traceFrom ?? Infinity),
    };
    if (c.forwardOnly) {
      const input = { tokens: b.tokens, batchSize: b.rows, seqLen: b.cols };
      const { logits, overlap } = await forwardRun(model, input, opts);
      logits.dispose();
      reports.push(onRank0Clock(overlap!, offsetMs));
    } else {
      const res = await trainStep(model, b, opts);
      tf.dispose([...res.grads.values()]);
      reports.push(onRank0Clock(res.overlap!, offsetMs));
    }
  };
  const finish = (): CaseResult => {
    disposeModel(model);
    return { name: c.name, reports, decisions };
  };
  return { step, finish };
}

/** Steps `cases` together, step after step, and disposes their models. */
async function runAll(
  cases: OverlapCase[],
  comm: Communicator,
  gradComm?: Communicator,
): Promise<CaseResult[]> {
  // Every rank's timed ops on rank 0's clock, so that ranks' times compare.
  const offsetMs = await clockOffsetMs(gradComm ?? comm);
  const runners = cases.map((c) => caseRunner(c, comm, gradComm, offsetMs));
  try {
    const steps = Math.max(...cases.map((c) => c.steps));
    for (let i = 0; i < steps; i++) {
      for (const [j, c] of cases.entries()) {
        if (i >= c.steps) continue;
        // Every step starts with the ranks aligned: a rank's lag at the end of
        // one case's step is not waited out inside the next case's.
        await comm.barrier();
        await runners[j].step(i);
      }
    }
  } catch (err) {
    for (const r of runners) r.finish();
    throw err;
  }
  return runners.map((r) => r.finish());
}

/**
 * Runs every case's steps on `comm` (dense gradients summed over `gradComm`
 * when given), case after case or (`interleave`) step after step across cases.
 */
export async function runCases(
  cases: OverlapCase[],
  interleave: boolean,
  comm: Communicator,
  gradComm?: Communicator,
): Promise<CaseResult[]> {
  if (!interleave) {
    const results = [];
    for (const c of cases) results.push(await runAll([c], comm, gradComm));
    return results.flat();
  }
  return await runAll(cases, comm, gradComm);
}
