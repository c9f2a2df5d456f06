/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * One expert-parallel rank for overlap measurements, as a plain Worker: it
 * joins a `local` group through its own communication worker (the
 * communication stream) and runs training steps of the cases it is sent,
 * reporting each step's overlap (training steps, or forward-only runs for
 * `forwardOnly` cases), case after case or, with `interleave`, step after
 * step across the cases. Spoken to by `overlap.ts`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { createCommunicator } from "../collectives/comm.ts";
import type { Communicator, LocalGroupSpec } from "../collectives/types.ts";
import { type BackendName, setupBackend } from "../models/backend.ts";
import { createModel, disposeModel, forwardRun, trainStep } from "../models/model.ts";
import type { OverlapReport } from "../models/overlap_report.ts";
import type { CaseResult, OverlapCase, RankMessage, RankRequest } from "./overlap.ts";

let comm: Communicator | undefined;
/** The group that sums dense gradients, when not `comm`. */
let gradComm: Communicator | undefined;

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

/** One case's model, stepped one step at a time; `finish` disposes it. */
function caseRunner(c: OverlapCase, rank: number, size: number) {
  const model = createModel(c.model, { rank, size, seed: 1 });
  const reports: OverlapReport[] = [];
  const decisions: string[] = [];
  const step = async (i: number) => {
    const b = batch(c, rank, i);
    const opts = {
      comm,
      gradComm,
      schedule: { ...c.schedule, log: (line: string) => decisions.push(line) },
      trace: c.traceStep === i || i >= (c.traceFrom ?? Infinity),
    };
    if (c.forwardOnly) {
      const input = { tokens: b.tokens, batchSize: b.rows, seqLen: b.cols };
      const { logits, overlap } = await forwardRun(model, input, opts);
      logits.dispose();
      reports.push(overlap!);
    } else {
      const res = await trainStep(model, b, opts);
      tf.dispose([...res.grads.values()]);
      reports.push(res.overlap!);
    }
  };
  const finish = (): CaseResult => {
    disposeModel(model);
    return { name: c.name, reports, decisions };
  };
  return { step, finish };
}

/** Runs every case's steps, case after case or (`interleave`) step after step across cases. */
async function runCases(cases: OverlapCase[], interleave: boolean): Promise<CaseResult[]> {
  const rank = comm!.rank, size = comm!.size;
  if (!interleave) {
    const results = [];
    for (const c of cases) results.push(await runAll([c], rank, size));
    return results.flat();
  }
  return await runAll(cases, rank, size);
}

/** Steps `cases` together, step after step, and disposes their models. */
async function runAll(cases: OverlapCase[], rank: number, size: number): Promise<CaseResult[]> {
  const runners = cases.map((c) => caseRunner(c, rank, size));
  try {
    const steps = Math.max(...cases.map((c) => c.steps));
    for (let i = 0; i < steps; i++) {
      for (const [j, c] of cases.entries()) if (i < c.steps) await runners[j].step(i);
    }
  } catch (err) {
    for (const r of runners) r.finish();
    throw err;
  }
  return runners.map((r) => r.finish());
}

function reply(m: RankMessage): void {
  self.postMessage(m);
}

self.onmessage = async (e: MessageEvent<RankRequest>) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      await setupBackend(m.backend as BackendName);
      comm = await createCommunicator(m.spec as LocalGroupSpec);
      if (m.gradSpec) gradComm = await createCommunicator(m.gradSpec);
      reply({ type: "ready" });
    } else if (m.type === "run") {
      reply({ type: "results", results: await runCases(m.cases, m.interleave ?? false) });
    } else {
      await comm?.close();
      await gradComm?.close();
      reply({ type: "closed" });
      self.close();
    }
  } catch (err) {
    reply({
      type: "error",
      message: err instanceof Error ? err.stack ?? err.message : String(err),
    });
  }
};
