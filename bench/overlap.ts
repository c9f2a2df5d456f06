/**
 * `deno task bench overlap [--json] [--quick] [--out DIR]`: how much of the
 * all-to-all communication each variant hides, measured on 2 ranks that are
 * Workers with their own communication workers, over a link shaped so that
 * communication is about half of the top-2 MoE block time.
 *
 * For one MoE block pair (a dense block, then an MoE block) it reports, per
 * variant, the MoE block's `hidden_fraction`, `eta`, `comm_ms`,
 * `compute_ms` and `window_ms` of a training step (forward and backward),
 * medians over the measured steps and both ranks. With `--out DIR` it also
 * writes a Chrome trace and an SVG timeline of one step per variant.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { meshPorts } from "../collectives/local.ts";
import type { LinkModel, LocalGroupSpec } from "../collectives/types.ts";
import type { ModelConfig } from "../models/config.ts";
import type { OverlapReport } from "../models/overlap_report.ts";
import type { ScheduleOptions } from "../models/scheduler.ts";
import { chromeTrace } from "../models/trace.ts";
import { type BenchRow, median, printRows } from "./output.ts";
import { timelineSvg } from "./timeline_svg.ts";

/** One run of training steps on every rank. */
export interface OverlapCase {
  /** Case name (the bench's `case`). */
  name: string;
  /** The model. */
  model: Partial<ModelConfig>;
  /** Its schedule (the log goes to the case's decisions). */
  schedule: Omit<ScheduleOptions, "log">;
  /** Training steps to run. */
  steps: number;
  /** Windows per rank and step. */
  rows: number;
  /** Tokens per window. */
  seq: number;
  /** The step whose timed ops are kept (for traces). */
  traceStep?: number;
  /** Forward-only runs (inference, `forwardRun`) instead of training steps. */
  forwardOnly?: boolean;
}

/** What one rank reports for one case. */
export interface CaseResult {
  /** The case's name. */
  name: string;
  /** Overlap report of every step. */
  reports: OverlapReport[];
  /** Schedule decisions, with their reasons. */
  decisions: string[];
}

/** Messages to a rank worker. */
export type RankRequest =
  | { type: "init"; spec: LocalGroupSpec; backend: string }
  | { type: "run"; cases: OverlapCase[]; interleave?: boolean }
  | { type: "close" };

/** Messages from a rank worker. */
export type RankMessage =
  | { type: "ready" }
  | { type: "results"; results: CaseResult[] }
  | { type: "closed" }
  | { type: "error"; message: string };

/** Options of {@linkcode runOnRanks}. */
export interface RanksOptions {
  /** Ranks (default 2). */
  size?: number;
  /** The emulated link between ranks (none: as fast as the machine goes). */
  link?: LinkModel;
  /** tfjs backend of the ranks (default "wasm"). */
  backend?: string;
  /**
   * Run the cases step after step (step 0 of every case, then step 1, ...)
   * so that machine noise hits all alike; default: case after case.
   */
  interleave?: boolean;
}

/**
 * Runs `cases` in order on `size` rank Workers joined by a `local` group
 * (each with its communication worker) and returns each rank's results.
 *
 * @example
 * ```ts
 * import { runOnRanks } from "./overlap.ts";
 * const perRank = await runOnRanks([{
 *   name: "pos2", model: { variant: "scmoe", nLayer: 2 }, schedule: {}, steps: 2, rows: 2, seq: 16,
 * }]);
 * perRank[0][0].reports[1].hiddenFraction; // e.g. 0.97
 * ```
 */
export async function runOnRanks(
  cases: OverlapCase[],
  opts: RanksOptions = {},
): Promise<CaseResult[][]> {
  const size = opts.size ?? 2;
  const groupId = `overlap-${crypto.randomUUID().slice(0, 8)}`;
  const mesh = meshPorts(size);
  const workers = mesh.map(() =>
    new Worker(new URL("./overlap_rank.ts", import.meta.url), { type: "module" })
  );
  const ask = (w: Worker, m: RankRequest, transfer: Transferable[] = []) =>
    new Promise<RankMessage>((resolve, reject) => {
      w.onmessage = (e: MessageEvent<RankMessage>) =>
        e.data.type === "error" ? reject(new Error(e.data.message)) : resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`rank worker failed: ${e.message}`));
      };
      w.postMessage(m, transfer);
    });
  try {
    await Promise.all(workers.map((w, rank) => {
      const ports = mesh[rank];
      const spec: LocalGroupSpec = {
        kind: "local",
        groupId,
        rank,
        size,
        ports,
        link: opts.link,
        timeoutMs: 120_000,
      };
      const transfer = ports.filter((p): p is MessagePort => p !== null);
      return ask(w, { type: "init", spec, backend: opts.backend ?? "wasm" }, transfer);
    }));
    const replies = await Promise.all(
      workers.map((w) => ask(w, { type: "run", cases, interleave: opts.interleave })),
    );
    await Promise.all(workers.map((w) => ask(w, { type: "close" })));
    return replies.map((r) => (r as { results: CaseResult[] }).results);
  } finally {
    for (const w of workers) w.terminate();
  }
}

/** The variants of the overlap benchmark: case name, model and schedule. */
export const VARIANTS: [string, Partial<ModelConfig>, Omit<ScheduleOptions, "log">][] = [
  ["scmoe-pos1", { variant: "scmoe", pos: 1 }, {}],
  ["scmoe-pos2", { variant: "scmoe", pos: 2 }, {}],
  ["scmoe-pos3", { variant: "scmoe", pos: 3 }, {}],
  ["dgmoe", { variant: "dgmoe" }, {}],
  ["top2-pipelined", { variant: "top2" }, { chunks: "auto" }],
  ["top2", { variant: "top2" }, { overlap: false }],
];

/** The model of the benchmark: one block pair (a dense block, then an MoE block). */
export const PAIR: Partial<ModelConfig> = {
  nLayer: 2,
  moeEvery: 2,
  nEmbd: 256,
  nHead: 4,
  nExperts: 4,
  blockSize: 64,
  capacityFactor: 2,
};

/** Bytes rank 0 sent to the other rank in the all-to-alls of a traced step's MoE blocks. */
export function blockBytes(report: OverlapReport): number {
  return report.ops!.filter((o) => o.kind === "comm" && o.name.includes(".moe.gate"))
    .reduce((s, o) => s + (o.bytes ?? 0), 0);
}

/** Medians over steps from `from` on and over ranks of one figure of a case's reports. */
export function figure(
  perRank: CaseResult[],
  from: number,
  pick: (r: OverlapReport) => number | null,
) {
  const values = perRank.flatMap((c) => c.reports.slice(from).map(pick));
  return median(values.map((v) => v ?? NaN).filter(Number.isFinite));
}

/** The benchmark's entry point. */
export async function runOverlapBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const quick = values.quick;
  const pair = { ...PAIR, nEmbd: quick ? 128 : 256 };
  const rows = quick ? 4 : 8, seq = 64;
  const warmup = 4, measured = quick ? 2 : 8;
  const steps = warmup + measured;
  const log = (s: string) => values.json || console.error(s);
  // Calibrate: top-2 run serially on an unshaped link; the link is then set so that the
  // bytes its MoE block sends to the other rank take as long as the block's compute
  // (less the communication's fixed cost, measured unshaped).
  const calibration = await runOnRanks([{
    name: "top2",
    model: { ...pair, variant: "top2" },
    schedule: { overlap: false },
    steps: 5,
    rows,
    seq,
    traceStep: 4,
  }]);
  const computeMs = figure(calibration.map((r) => r[0]), 2, (r) => r.computeMs);
  const fixedMs = figure(calibration.map((r) => r[0]), 2, (r) => r.commMs);
  const bytes = blockBytes(calibration[0][0].reports[4]);
  const link: LinkModel = {
    bandwidthBytesPerS: bytes / (Math.max(computeMs / 2, computeMs - fixedMs) / 1e3),
    latencyS: 2e-4,
  };
  log(
    `calibration: top-2 block compute ${computeMs.toFixed(1)} ms, unshaped comm ` +
      `${fixedMs.toFixed(1)} ms, ${(bytes / 1e6).toFixed(2)} MB to the other rank ` +
      `-> link ${(link.bandwidthBytesPerS / 1e6).toFixed(2)} MB/s`,
  );
  const cases = VARIANTS.map(([name, model, schedule]): OverlapCase => ({
    name,
    model: { ...pair, ...model },
    schedule,
    steps,
    rows,
    seq,
    traceStep: steps - 1,
  }));
  const perRank = await runOnRanks(cases, { link });
  const out: BenchRow[] = [];
  cases.forEach((c, i) => {
    const results = perRank.map((r) => r[i]);
    for (const line of results[0].decisions) log(`rank 0 ${line}`);
    const metric = (name: string, unit: string, pick: (r: OverlapReport) => number | null) =>
      out.push({
        bench: "overlap",
        case: c.name,
        metric: name,
        value: figure(results, warmup, pick),
        unit,
      });
    metric("hidden_fraction", "ratio", (r) => r.hiddenFraction);
    metric("eta", "ratio", (r) => r.eta);
    metric("comm_ms", "ms", (r) => r.commMs);
    metric("compute_ms", "ms", (r) => r.computeMs);
    metric("window_ms", "ms", (r) => r.windowMs);
    metric("block_ms", "ms", (r) => r.spanMs);
    metric("step_ms", "ms", (r) => r.stepMs);
  });
  out.push({
    bench: "overlap",
    case: "link",
    metric: "bandwidth",
    value: link.bandwidthBytesPerS / 1e6,
    unit: "MB/s",
  });
  printRows(out, values.json);
  if (values.out) {
    await Deno.mkdir(values.out, { recursive: true });
    const traced = cases.map((c, i) => ({
      name: c.name,
      ranks: perRank.map((r) => r[i].reports[c.traceStep!].ops ?? []),
    }));
    await Deno.writeTextFile(
      `${values.out}/overlap_trace.json`,
      JSON.stringify(chromeTrace(traced)),
    );
    await Deno.writeTextFile(`${values.out}/overlap_timeline.svg`, timelineSvg(traced));
    log(`wrote ${values.out}/overlap_trace.json and ${values.out}/overlap_timeline.svg`);
  }
}
