/**
 * `deno task bench scenarios [--json] [--quick]`: the paper's speed-up tables
 * reproduced here. A scenario is the communication share of the serial top-2
 * MoE block's time (`pcie` 60%, `nvlink` 15%, `ethernet` 50%). One
 * calibration run measures the top-2 block's compute and all-to-all bytes on
 * this machine; each scenario then sets the link model's bandwidth that gives
 * its share (`shaping: "link-model"`; the measured share is reported).
 *
 * For each scenario the training step and the forward-only (inference) step
 * of every variant run on 2 rank Workers, variants interleaved step by step;
 * medians after warm-up over steps and ranks give `train_step_ms`,
 * `infer_step_ms`, the speed-ups over `top2` (the paper's figure as the
 * reference where it has one), the MoE block's `hidden_fraction` and the
 * speed-up bound from `max(compute, communication)` of the variant's block.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { LinkModel } from "../collectives/types.ts";
import type { OverlapReport } from "../models/overlap_report.ts";
import type { TracedRun } from "../models/trace.ts";
import { type BenchRow, printRows } from "./output.ts";
import {
  blockBytes,
  type CaseResult,
  figure,
  type OverlapCase,
  PAIR,
  runOnRanks,
  VARIANTS,
} from "./overlap.ts";

/** The scenarios: top-2 communication share and the paper's speed-ups over top-2. */
export const SCENARIOS: Record<
  string,
  { share: number; setting: string; paper: Record<string, [train: number, infer: number]> }
> = {
  pcie: {
    share: 0.6,
    setting: "8x A30 PCIe, SwinV2-MoE-S",
    paper: {
      "scmoe-pos1": [1.36, 1.54],
      "scmoe-pos2": [1.43, 1.66],
      "scmoe-pos3": [1.49, 1.82],
      top1: [1.27, 1.39],
      se: [1.24, 1.35],
    },
  },
  nvlink: {
    share: 0.15,
    setting: "8x A800 NVLink, GPT2-MoE",
    paper: { "scmoe-pos2": [1.12, 1.17], se: [1.04, 1.06] },
  },
  ethernet: { share: 0.5, setting: "2 nodes over Ethernet (no speed-up table)", paper: {} },
};

/** Every variant measured, as `[case name, model, schedule]`, top-2 (serial) last. */
export const SCENARIO_VARIANTS: typeof VARIANTS = [
  ["top1", { variant: "top1" }, {}],
  ["se", { variant: "se" }, {}],
  ...VARIANTS,
];

/** The serial top-2 MoE block measured on an unshaped link. */
export interface Calibration {
  /** Compute ops of the block in a training step (forward and backward). */
  computeMs: number;
  /** Its all-to-alls in flight, unshaped: the fixed cost of communication here. */
  fixedMs: number;
  /** Bytes one rank sends to the other in them. */
  bytes: number;
  /** How many all-to-alls they are (each pays the link's latency). */
  calls: number;
}

/**
 * The link on which the block's communication is `share` of its serial time
 * `compute + comm`: communication must take `comm = share / (1 - share) *
 * compute`, of which the fixed cost and each call's latency are already
 * spent; the bytes fill the rest (at least a tenth of it).
 *
 * @example
 * ```ts
 * import { linkForShare } from "./scenarios.ts";
 * // 100 ms compute at 60%: 150 ms of communication, 10 ms fixed, 4 x 0.2 ms latency
 * const cal = { computeMs: 100, fixedMs: 10, bytes: 1.392e6, calls: 4 };
 * linkForShare(cal, 0.6, 2e-4).bandwidthBytesPerS; // 1e7 (1.392 MB in 139.2 ms)
 * ```
 */
export function linkForShare(cal: Calibration, share: number, latencyS: number): LinkModel {
  const commMs = (share / (1 - share)) * cal.computeMs;
  const wireMs = Math.max(commMs / 10, commMs - cal.fixedMs - cal.calls * latencyS * 1e3);
  return { bandwidthBytesPerS: cal.bytes / (wireMs / 1e3), latencyS };
}

/** What {@linkcode measureScenarios} returns. */
export interface ScenarioResults {
  /** The benchmark's rows (every row carries `shaping`). */
  rows: (BenchRow & { shaping: string })[];
  /** One traced training step of every variant, per scenario. */
  traced: Record<string, TracedRun[]>;
  /** The calibration measured. */
  calibration: Calibration;
  /** The sizes used. */
  sizes: { nEmbd: number; rows: number; seq: number; warmup: number; measured: number };
}

const LATENCY_S = 2e-4;

/** The step time of a run if its MoE block had reached its bound `max(compute, comm)`. */
function boundStepMs(r: OverlapReport): number {
  return r.stepMs - r.spanMs + r.boundMs;
}

/** Measures every scenario; progress lines go to `log`. */
export async function measureScenarios(
  quick: boolean,
  log: (line: string) => void,
): Promise<ScenarioResults> {
  const sizes = quick
    ? { nEmbd: 128, rows: 2, seq: 64, warmup: 2, measured: 3 }
    : { nEmbd: 256, rows: 8, seq: 64, warmup: 4, measured: 8 };
  const pair = { ...PAIR, nEmbd: sizes.nEmbd };
  const steps = sizes.warmup + sizes.measured;
  const cal = await runOnRanks([{
    name: "top2",
    model: { ...pair, variant: "top2" },
    schedule: { overlap: false },
    steps: 4,
    rows: sizes.rows,
    seq: sizes.seq,
    traceStep: 3,
  }]);
  const traceOps = cal[0][0].reports[3].ops!.filter((o) =>
    o.kind === "comm" && o.name.includes(".moe.gate")
  );
  const calibration: Calibration = {
    computeMs: figure(cal.map((r) => r[0]), 1, (r) => r.computeMs),
    fixedMs: figure(cal.map((r) => r[0]), 1, (r) => r.commMs),
    bytes: blockBytes(cal[0][0].reports[3]),
    calls: traceOps.length,
  };
  log(
    `calibration: top-2 block compute ${calibration.computeMs.toFixed(1)} ms, unshaped comm ` +
      `${calibration.fixedMs.toFixed(1)} ms, ${(calibration.bytes / 1e6).toFixed(3)} MB in ` +
      `${calibration.calls} all-to-alls`,
  );
  const shaping = "link-model";
  const rows: ScenarioResults["rows"] = [];
  const traced: Record<string, TracedRun[]> = {};
  const push = (c: string, metric: string, value: number | string, unit: string, ref?: number) =>
    rows.push({
      bench: "scenarios",
      case: c,
      metric,
      value,
      unit,
      shaping,
      ...(ref === undefined ? {} : { reference: `paper ${ref}` }),
    });
  push("machine", "cores", navigator.hardwareConcurrency, "cores");
  push("machine", "ranks", 2, "ranks");
  for (const [scenario, spec] of Object.entries(SCENARIOS)) {
    const link = linkForShare(calibration, spec.share, LATENCY_S);
    log(`${scenario}: link ${(link.bandwidthBytesPerS / 1e6).toFixed(2)} MB/s`);
    const cases = SCENARIO_VARIANTS.flatMap(([name, model, schedule]) =>
      [false, true].map((forwardOnly): OverlapCase => ({
        name,
        model: { ...pair, ...model },
        schedule,
        steps,
        rows: sizes.rows,
        seq: sizes.seq,
        traceStep: steps - 1,
        forwardOnly,
      }))
    );
    const perRank = await runOnRanks(cases, { link, interleave: true });
    const results = (name: string, forwardOnly: boolean): CaseResult[] => {
      const i = cases.findIndex((c) => c.name === name && c.forwardOnly === forwardOnly);
      return perRank.map((r) => r[i]);
    };
    const med = (name: string, fwd: boolean, pick: (r: OverlapReport) => number | null) =>
      figure(results(name, fwd), sizes.warmup, pick);
    const top2 = [med("top2", false, (r) => r.stepMs), med("top2", true, (r) => r.stepMs)];
    const share = (fwd: boolean) => med("top2", fwd, (r) => r.commMs / (r.computeMs + r.commMs));
    push(`${scenario}/link`, "bandwidth", link.bandwidthBytesPerS / 1e6, "MB/s");
    push(`${scenario}/top2`, "comm_share", share(false), "ratio", spec.share);
    push(`${scenario}/top2`, "infer_comm_share", share(true), "ratio");
    for (const [name] of SCENARIO_VARIANTS) {
      const c = `${scenario}/${name}`;
      const paper = spec.paper[name];
      const train = med(name, false, (r) => r.stepMs), infer = med(name, true, (r) => r.stepMs);
      push(c, "train_step_ms", train, "ms");
      push(c, "infer_step_ms", infer, "ms");
      push(c, "train_speedup", top2[0] / train, "x", paper?.[0]);
      push(c, "infer_speedup", top2[1] / infer, "x", paper?.[1]);
      push(c, "hidden_fraction", med(name, false, (r) => r.hiddenFraction), "ratio");
      push(c, "infer_hidden_fraction", med(name, true, (r) => r.hiddenFraction), "ratio");
      push(c, "train_speedup_bound", top2[0] / med(name, false, boundStepMs), "x");
      push(c, "infer_speedup_bound", top2[1] / med(name, true, boundStepMs), "x");
      for (const line of results(name, false)[0].decisions) log(`${c} rank 0 ${line}`);
    }
    traced[scenario] = SCENARIO_VARIANTS.map(([name]) => ({
      name: `${scenario}/${name}`,
      ranks: results(name, false).map((r) => r.reports[steps - 1].ops ?? []),
    }));
  }
  return { rows, traced, calibration, sizes };
}

/** The benchmark's entry point. */
export async function runScenariosBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
    },
  });
  const { rows } = await measureScenarios(values.quick, (s) => values.json || console.error(s));
  printRows(rows, values.json);
}
