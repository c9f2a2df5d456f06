/**
 * The simulator checked against 2 and 4 ranks measured now (`deno task
 * bench simulate --ranks`): rank Workers of the link model on this
 * machine's cores train one block pair (`PAIR`) with top-2, ScMoE Pos-2,
 * the shared expert and top-1, variants interleaved step by step, on one
 * emulated link (its rate set so that top-2's block communicates about as
 * long as it computes on 2 ranks) for every rank count.
 *
 * The prediction takes from the measurement only what a user would know of
 * their own machine: the device fitted to the 2-rank top-2 steps' op times
 * (every other variant, and every 4-rank figure, predicted), the link's
 * rate, and each rank count's unshaped cost of an all-to-all call. Where
 * `N` ranks share `C` cores each computes with a share `min(1, C / N)` of a
 * device (`SimSetup.computeShare`): on 2 cores 4 ranks take twice a rank's
 * compute time, which no GPU cluster does, so the 4-rank check is of the
 * simulator's rules (ranks, bytes, share), not of a cluster's speed.
 *
 * @module
 */
import { resolveConfig } from "../models/config.ts";
import { gpt } from "../models/gpt.ts";
import { fitDeviceRates, opSamples } from "../models/calibrate.ts";
import { HARDWARE, type Hardware } from "../models/hardware.ts";
import { SETTLED_AFTER_STEPS } from "../models/scheduler.ts";
import { SIM_VARIANTS, simulateVariants, stepShape } from "../models/simulate.ts";
import type { LinkModel } from "../collectives/types.ts";
import type { Check } from "./simulate_validate.ts";
import { UNSHAPED } from "./simulate_validate.ts";
import {
  blockBytes,
  type CaseResult,
  exchangeFigure,
  figure,
  groupFigure,
  LATENCY_S,
  linkForComm,
  type OverlapCase,
  PAIR,
  runOnRanks,
} from "./overlap.ts";

/** The variants measured: the baseline first. */
export const RANKS_VARIANTS = ["top2", "scmoe-pos2", "se", "top1"] as const;

/** All-to-alls of an MoE block's training step: dispatch and combine, forward and backward. */
const CALLS_PER_BLOCK = 4;

/** One rank count measured: its link's per-call cost and each variant's group step time. */
export interface RanksMeasurement {
  /** Ranks. */
  ranks: number;
  /** Milliseconds of an unshaped all-to-all call at this rank count. */
  callMs: number;
  /** Median over steps of the slowest rank's training step, per variant. */
  stepMs: Record<string, number>;
  /** Every rank's results of top-2 (for the fit). */
  top2: CaseResult[];
}

/** What {@linkcode measureRanks} measured, and on what. */
export interface RanksRun {
  /** The model (`PAIR` at the run's width). */
  model: typeof PAIR;
  /** Sequences per rank and step. */
  rows: number;
  /** Tokens per sequence. */
  seq: number;
  /** Steps whose figures count: from this one on. */
  from: number;
  /** Cores of this machine. */
  cores: number;
  /** The emulated link every rank count ran on. */
  link: LinkModel;
  /** Per rank count. */
  sizes: RanksMeasurement[];
}

/** Options of {@linkcode measureRanks}. */
export interface MeasureRanksOptions {
  /** Rank counts, the smallest first: the link is set on it (default 2 and 4). */
  sizes?: number[];
  /** A smaller model and batch (default false). */
  quick?: boolean;
  /** The variants, top-2 first (default {@linkcode RANKS_VARIANTS}). */
  variants?: readonly string[];
  /** Steps measured after the scheduler settles (default 6). */
  measured?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** Runs the variants on each rank count (see the module doc). */
export async function measureRanks(opts: MeasureRanksOptions = {}): Promise<RanksRun> {
  const sizes = opts.sizes ?? [2, 4];
  const variants = opts.variants ?? RANKS_VARIANTS;
  if (variants[0] !== "top2") throw new Error("measureRanks: the variants must start with top2");
  const log = opts.log ?? (() => {});
  const model = { ...PAIR, nEmbd: opts.quick ? 128 : 256 };
  const rows = opts.quick ? 4 : 8, seq = 64;
  const from = SETTLED_AFTER_STEPS, steps = from + (opts.measured ?? 6);
  const caseOf = (name: string, calibration = false): OverlapCase => {
    const v = SIM_VARIANTS.find((s) => s.name === name)!;
    return {
      name,
      model: { ...model, ...v.model },
      schedule: v.schedule,
      steps: calibration ? 5 : steps,
      rows,
      seq,
      traceFrom: calibration ? 2 : from,
    };
  };
  let link: LinkModel | undefined;
  const measured: RanksMeasurement[] = [];
  for (const size of sizes) {
    const cal = (await runOnRanks([caseOf("top2", true)], { size, gradLink: null })).map((r) =>
      r[0]
    );
    const commMs = exchangeFigure(cal, 2, (f) => f.commMs);
    const callMs = commMs / CALLS_PER_BLOCK;
    link ??= linkForComm(
      { fixedMs: commMs, bytes: blockBytes(cal[0].reports[4]), calls: CALLS_PER_BLOCK },
      figure(cal, 2, (r) => r.computeMs),
      LATENCY_S,
    );
    log(
      `${size} ranks: unshaped all-to-all ${callMs.toFixed(1)} ms a call; link ${
        (link.bandwidthBytesPerS / 1e6).toFixed(2)
      } MB/s`,
    );
    const perRank = await runOnRanks(variants.map((v) => caseOf(v)), {
      size,
      link,
      gradLink: null,
      interleave: true,
    });
    const stepMs: Record<string, number> = {};
    for (const [i, v] of variants.entries()) {
      stepMs[v] = groupFigure(perRank.map((r) => r[i]), from, (r) => r.stepMs);
    }
    log(`${size} ranks: ${JSON.stringify(stepMs)}`);
    measured.push({ ranks: size, callMs, stepMs, top2: perRank.map((r) => r[0]) });
  }
  return {
    model,
    rows,
    seq,
    from,
    cores: navigator.hardwareConcurrency,
    link: link!,
    sizes: measured,
  };
}

/**
 * The checks of a {@linkcode RanksRun}: per rank count and variant the
 * predicted and measured training step time, and each variant's speed-up
 * over top-2; the device fitted to the first rank count's top-2 steps.
 */
export function ranksChecks(run: RanksRun): Check[] {
  const first = run.sizes[0];
  const top2 = SIM_VARIANTS.find((v) => v.name === "top2")!;
  const setupOf = (size: RanksMeasurement, hardware: Hardware) => ({
    hardware,
    ep: size.ranks,
    batch: run.rows,
    seq: run.seq,
    computeShare: Math.min(1, run.cores / size.ranks),
    allreduceTopology: UNSHAPED,
  });
  const program = gpt(resolveConfig({ ...run.model, ...top2.model })).program(true);
  const samples = opSamples(
    program,
    stepShape(setupOf(first, HARDWARE.here), true),
    first.top2.flatMap((c) => c.reports.slice(run.from).map((r) => r.ops ?? [])),
  );
  const device = fitDeviceRates(samples, HARDWARE.here.device).device;
  const checks: Check[] = [];
  for (const size of run.sizes) {
    const l = { bytesPerS: run.link.bandwidthBytesPerS, latencyS: size.callMs / 1e3 };
    const hardware: Hardware = {
      ...HARDWARE.here,
      device,
      topology: { ranksPerNode: size.ranks, intra: l, inter: l, perPeerS: 0 },
    };
    const variants = SIM_VARIANTS.filter((v) => v.name in size.stepMs);
    const predicted = simulateVariants(run.model, setupOf(size, hardware), variants);
    const source = `measured now: ${size.ranks} rank Workers on ${run.cores} cores, link model ` +
      `${(run.link.bandwidthBytesPerS / 1e6).toFixed(2)} MB/s`;
    for (const p of predicted) {
      const at = `validate/here/ranks/${size.ranks}/${p.variant}`;
      checks.push({
        case: `${at}/train_step_ms`,
        what: "train_step_ms",
        predicted: p.train.stepMs,
        measured: size.stepMs[p.variant],
        unit: "ms",
        source,
      });
      if (p.variant === "top2") continue;
      checks.push({
        case: `${at}/train_speedup`,
        what: "train_speedup",
        predicted: p.trainSpeedup,
        measured: size.stepMs.top2 / size.stepMs[p.variant],
        unit: "x",
        source,
      });
    }
  }
  return checks;
}
