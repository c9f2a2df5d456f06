/**
 * `deno task bench overlap [--json] [--quick] [--out DIR] [--from DIR]`: how much of the
 * all-to-all communication each variant hides, measured on 2 ranks that are
 * Workers with their own communication workers, over shaped links:
 *
 * - every variant where communication is about half of the serial top-2
 *   MoE block time (communication as long as compute; for this small model
 *   that makes ScMoE Pos-2's communication longer than its forward window);
 * - ScMoE Pos-2 (cases `scmoe-pos2/comm-x<r>-window`) where each pass's
 *   all-to-alls take r of its forward window, for r in
 *   {@linkcode WINDOW_RATIOS}: the regime where the paper hides it all
 *   (communication at most the window; the targets here: eta at least 0.9
 *   up to 0.8 of the window, 0.8 at the window, {@linkcode etaTarget});
 *   the measured `comm_window_ratio_fwd` / `_bwd` say what was reached.
 *
 * For one MoE block pair (a dense block, then an MoE block) it reports, per
 * case, the MoE block's `hidden_fraction`, `eta`, `comm_ms`, `compute_ms`
 * and `window_ms` of a training step (forward and backward), medians over
 * the measured steps and both ranks. `eta` is the group's
 * (`groupFigures` of `overlap_report.ts`: the slowest rank's compute, the
 * exchanges from the last rank's issue to the last completion, the longest
 * rank's block time; `eta_rank_median` is the median of each rank's own),
 * beside where the block's time stands above its bound `max(compute,
 * comm)`: `exposed_over_bound_ms`, `handoff_ms`, `skew_ms` and
 * `overhead_ms` (each a median over steps, so they add up to
 * `bound_gap_ms` only about), and, for ScMoE Pos-2, the compute its
 * overlapped path adds over the same steps run serially beside it
 * (`added_compute_ms`, against `serial_block_ms`). Communication counts transfer only:
 * from the moment the last rank issued an all-to-all to the moment this
 * rank completed it (`transferFigures`); the `*_with_skew` figures count it from this rank's
 * issue, so they include waiting for the slower rank. With `--out DIR` it
 * also writes a Chrome trace of one step per case (the median one by step
 * time, {@linkcode medianStep}) and an SVG timeline of those steps of the
 * variants; `--from DIR` draws that timeline again from `DIR/overlap_trace.json`
 * and runs nothing.
 *
 * @module
 */
import { parseCommand, usage } from "../cli/flags.ts";
import { fromFlag, OVERLAP_COMMAND, pathFlag } from "./commands.ts";
import { meshPorts } from "../collectives/local.ts";
import type { LinkModel, LocalGroupSpec } from "../collectives/types.ts";
import { type ModelConfig, resolveConfig } from "../models/config.ts";
import { gpt } from "../models/gpt.ts";
import {
  alignCollectives,
  blockFigures,
  type BlockOverlap,
  type BoundGap,
  type GroupFigures,
  groupFigures,
  type OverlapFigures,
  type OverlapReport,
  spanCollectives,
  sumFigures,
  type TimedOp,
} from "../models/overlap_report.ts";
import {
  explainOverlap,
  OverlapScheduler,
  type ScheduleOptions,
  SETTLED_AFTER_STEPS,
} from "../models/scheduler.ts";
import { chromeTrace, fromChromeTrace, type TracedRun } from "../models/trace.ts";
import { type BenchRow, formatNumber, median, printRows } from "./output.ts";

/** Milliseconds as the log prints them. */
const ms = (v: number) => `${formatNumber(v)} ms`;
import { finiteMedian } from "../models/overlap_metrics.ts";
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
  /** Steps from this one on keep their timed ops too (for {@linkcode transferFigure}). */
  traceFrom?: number;
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
  | { type: "init"; spec: LocalGroupSpec; gradSpec?: LocalGroupSpec; backend: string }
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
  /**
   * Sum the dense gradients over a second group of the same ranks with this
   * link (null: unshaped) instead of over the expert-parallel group's link.
   */
  gradLink?: LinkModel | null;
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
  const gradMesh = opts.gradLink === undefined ? null : meshPorts(size);
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
      const group = (
        id: string,
        ports: (MessagePort | null)[],
        link?: LinkModel,
      ): LocalGroupSpec => ({
        kind: "local",
        groupId: id,
        rank,
        size,
        ports,
        link,
        timeoutMs: 120_000,
      });
      const spec = group(groupId, mesh[rank], opts.link);
      const gradSpec = gradMesh
        ? group(`${groupId}-grads`, gradMesh[rank], opts.gradLink ?? undefined)
        : undefined;
      const transfer = [...mesh[rank], ...(gradMesh?.[rank] ?? [])]
        .filter((p): p is MessagePort => p !== null);
      return ask(w, { type: "init", spec, gradSpec, backend: opts.backend ?? "wasm" }, transfer);
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

/**
 * Medians over steps from `from` on of the slowest rank's figure in each
 * step. Every step starts with the ranks aligned (`overlap_cases.ts`), so a
 * step of the group takes its slowest rank's step time.
 */
export function groupFigure(
  perRank: CaseResult[],
  from: number,
  pick: (r: OverlapReport) => number,
): number {
  return slowestPerStep(perRank.map((c) => c.reports.slice(from).map(pick)));
}

/**
 * The step from `from` on to draw as the case's typical one: the step whose
 * group step time (its slowest rank's) is the median (the lower of the two
 * middle ones for an even count), so that no outlier step stands for the case.
 *
 * @example
 * ```ts
 * import type { CaseResult } from "./overlap.ts";
 * import { medianStep } from "./overlap.ts";
 * const rank = (ms: number[]) => ({ reports: ms.map((stepMs) => ({ stepMs })) }) as unknown as CaseResult;
 * // From step 1 on the group took 30, 14, 200 and 12 ms: 14 ms is the lower middle one.
 * medianStep([rank([9, 30, 10, 200, 12]), rank([9, 11, 14, 5, 12])], 1); // 2
 * ```
 */
export function medianStep(perRank: CaseResult[], from: number): number {
  const steps = perRank[0].reports.length;
  const group = Array.from({ length: steps - from }, (_, i) => from + i).map((step) => ({
    step,
    ms: Math.max(...perRank.map((c) => c.reports[step].stepMs)),
  }));
  group.sort((a, b) => a.ms - b.ms || a.step - b.step);
  return group[Math.floor((group.length - 1) / 2)]?.step ?? steps - 1;
}

/** The median over steps of the largest value over ranks; `values[rank][step]`. */
function slowestPerStep(values: number[][]): number {
  return finiteMedian(values[0].map((_, i) => Math.max(...values.map((rank) => rank[i]))));
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

/**
 * Per rank, step `step`'s MoE-block figures with communication counted as
 * transfer only: from the moment the last rank issued each all-to-all to
 * the moment this rank completed it (see `alignCollectives`); the step
 * must have kept its timed ops. `align` may time the collectives otherwise
 * (`spanCollectives`).
 */
export function transferFigures(
  perRank: CaseResult[],
  step: number,
  align: (ranks: TimedOp[][]) => TimedOp[][] = alignCollectives,
): BlockFigures[] {
  const ops = align(perRank.map((c) => c.reports[step].ops!));
  return perRank.map((c, r) => {
    const layout = c.reports[step].layout!;
    const blocks = blockFigures(ops[r], layout);
    const exchanges = ops[r].filter((o) => o.kind === "comm" && layout.blockOf.has(o.name)).length;
    return { ...sumFigures(blocks), blocks, exchanges };
  });
}

/** The figures of a run's MoE blocks, summed, with each block's and their exchanges' count. */
export type BlockFigures = OverlapFigures & { blocks: BlockOverlap[]; exchanges: number };

/** Per step from `from` on, {@linkcode transferFigures} (those steps must keep their ops). */
function stepsFrom(
  perRank: CaseResult[],
  from: number,
  align?: (ranks: TimedOp[][]) => TimedOp[][],
): BlockFigures[][] {
  const steps = perRank[0].reports.length;
  return Array.from({ length: steps - from }, (_, i) => transferFigures(perRank, from + i, align));
}

/** {@linkcode figure} on {@linkcode transferFigures} (steps from `from` on must keep their ops). */
export function transferFigure(
  perRank: CaseResult[],
  from: number,
  pick: (f: BlockFigures) => number | null,
): number {
  return finiteMedian(stepsFrom(perRank, from).flat().map((f) => pick(f) ?? NaN));
}

/**
 * The median over steps from `from` on of a figure of the group's MoE
 * blocks (`groupFigures`, summed over blocks), from each step's timed ops
 * (those steps must keep them).
 */
export function blockGroupFigure(
  perRank: CaseResult[],
  from: number,
  pick: (g: GroupFigures) => number | null,
): number {
  const steps = perRank[0].reports.length;
  const values = Array.from({ length: steps - from }, (_, i) => {
    const transfer = transferFigures(perRank, from + i);
    const exchange = transferFigures(perRank, from + i, spanCollectives);
    const blocks = transfer[0].blocks.map((_, b) =>
      groupFigures(transfer.map((r) => r.blocks[b]), exchange.map((r) => r.blocks[b]))
    );
    return pick(sumGroups(blocks)) ?? NaN;
  });
  return finiteMedian(values);
}

/**
 * The median over steps from `from` on of the first MoE block's exchanges
 * in `pass` (the group's: last issue to last completion) over its window
 * (the ranks' mean): whether the communication fits the compute that can
 * hide it. A rank's own transfer would not say it: the rank that issues
 * last finds its peers' bytes already there.
 */
export function windowRatio(
  perRank: CaseResult[],
  from: number,
  pass: "forward" | "backward",
): number {
  const steps = perRank[0].reports.length;
  return finiteMedian(Array.from({ length: steps - from }, (_, i) => {
    const exchange = transferFigures(perRank, from + i, spanCollectives);
    const passes = exchange.map((r) => r.blocks[0]?.[pass] ?? null);
    if (passes.some((p) => p === null)) return NaN;
    const comm = Math.max(...passes.map((p) => p!.commMs));
    const window = passes.reduce((s, p) => s + p!.windowMs, 0) / passes.length;
    return window > 0 ? comm / window : NaN;
  }));
}

/** Group figures of several blocks, summed (eta of the sums). */
function sumGroups(blocks: GroupFigures[]): GroupFigures {
  if (blocks.length === 1) return blocks[0];
  const add = (pick: (g: GroupFigures) => number) => blocks.reduce((s, g) => s + pick(g), 0);
  const computeMs = add((g) => g.computeMs), commMs = add((g) => g.commMs);
  const spanMs = add((g) => g.spanMs), boundMs = add((g) => g.boundMs);
  const serial = computeMs + commMs;
  return {
    computeMs,
    commMs,
    spanMs,
    boundMs,
    eta: serial - boundMs > 1e-9 ? (serial - spanMs) / (serial - boundMs) : null,
    gap: {
      totalMs: add((g) => g.gap.totalMs),
      exposedMs: add((g) => g.gap.exposedMs),
      handoffMs: add((g) => g.gap.handoffMs),
      skewMs: add((g) => g.gap.skewMs),
      overheadMs: add((g) => g.gap.overheadMs),
    },
    imbalanceMs: add((g) => g.imbalanceMs),
  };
}

/**
 * A figure of the group's exchange rather than of one rank: per step from
 * `from` on, the largest over ranks of `pick` on {@linkcode transferFigures}
 * with each collective spanning from its last issue to its last completion
 * (`spanCollectives`), then the median over steps. For the communication
 * time this is the exchanges' transfer: a rank that issued a collective
 * late finds its peers' bytes already on the wire, so its own transfer is
 * shorter by the skew, while the step still waits for the whole exchange;
 * and the rank that is late differs from one collective to the next, so no
 * one rank's sum is the group's. Link calibrations use it, so that skew
 * between ranks does not read as a faster link.
 */
export function exchangeFigure(
  perRank: CaseResult[],
  from: number,
  pick: (f: BlockFigures) => number,
): number {
  const steps = stepsFrom(perRank, from, spanCollectives);
  return slowestPerStep(perRank.map((_, r) => steps.map((ranks) => pick(ranks[r]))));
}

/**
 * The link on which communication of `bytes` in `calls` calls takes
 * `commMs`, of which `fixedMs` (measured unshaped) and each call's latency
 * are already spent; the bytes fill the rest (at least a tenth of it).
 */
export function linkForComm(
  cal: { fixedMs: number; bytes: number; calls: number },
  commMs: number,
  latencyS: number,
): LinkModel {
  const wireMs = Math.max(commMs / 10, commMs - cal.fixedMs - cal.calls * latencyS * 1e3);
  return { bandwidthBytesPerS: cal.bytes / (wireMs / 1e3), latencyS };
}

/**
 * The link corrected from a measurement on it: the wire time of the
 * block's `bytes` changes by what the measured communication missed the
 * wanted one (at least a tenth of it stays).
 *
 * @example
 * ```ts
 * import { correctLink } from "./overlap.ts";
 * // 1 MB at 10 MB/s is 100 ms on the wire; 90 ms wanted, 120 ms measured: 1 MB in 70 ms.
 * correctLink({ bandwidthBytesPerS: 1e7, latencyS: 0 }, 1e6, 90, 120).bandwidthBytesPerS; // about 1.43e7
 * ```
 */
export function correctLink(
  link: LinkModel,
  bytes: number,
  wantMs: number,
  measuredMs: number,
): LinkModel {
  const wireMs = (bytes / link.bandwidthBytesPerS) * 1e3;
  const next = Math.max(wireMs / 10, wireMs + wantMs - measuredMs);
  return { ...link, bandwidthBytesPerS: bytes / (next / 1e3) };
}

/** One calibration run: the wire time of the bytes on its link, and the share (or ratio) it gave. */
export interface ShareTrial {
  /** Milliseconds the block's bytes take on the link at its bandwidth. */
  wireMs: number;
  /** The communication share (or ratio to a window) measured on it: grows with the wire time. */
  share: number;
}

/**
 * The wire time to try next for `target`, from the runs so far. Two runs on
 * either side of the target give it by interpolation (the closest such
 * pair); otherwise the last two runs give the slope to extrapolate with, at
 * most doubling or halving the last wire time. With fewer runs, or a slope
 * that noise has made flat or negative, it is `fallbackMs` (a
 * {@linkcode correctLink} step). Shares move with machine noise, and the
 * measured slope takes in what the model behind `correctLink` misses, such
 * as the unshaped cost overlapping the wire time on a shaped link.
 *
 * @example
 * ```ts
 * import { nextWireMs } from "./overlap.ts";
 * // 0.36 at 243 ms and 0.57 at 431 ms: 0.5 lies about two thirds of the way.
 * nextWireMs([{ wireMs: 243, share: 0.36 }, { wireMs: 431, share: 0.57 }], 0.5, 313); // 368.3...
 * ```
 */
export function nextWireMs(tried: ShareTrial[], target: number, fallbackMs: number): number {
  const between = (a: ShareTrial, b: ShareTrial) =>
    a.wireMs + ((target - a.share) / (b.share - a.share)) * (b.wireMs - a.wireMs);
  let bracket: [ShareTrial, ShareTrial] | undefined;
  for (const lo of tried.filter((t) => t.share < target)) {
    for (const hi of tried.filter((t) => t.share > target && t.wireMs > lo.wireMs)) {
      if (!bracket || hi.wireMs - lo.wireMs < bracket[1].wireMs - bracket[0].wireMs) {
        bracket = [lo, hi];
      }
    }
  }
  if (bracket) return between(...bracket);
  if (tried.length < 2) return fallbackMs;
  const [a, b] = tried.slice(-2);
  if ((b.share - a.share) / (b.wireMs - a.wireMs) <= 0 || a.wireMs === b.wireMs) return fallbackMs;
  return Math.min(2 * b.wireMs, Math.max(b.wireMs / 2, between(a, b)));
}

/** Communication over forward window of ScMoE Pos-2 in the regime the targets name. */
export const WINDOW_RATIOS = [0.4, 0.6, 0.8, 1];

/**
 * The eta ScMoE Pos-2 should reach with communication `ratio` of its
 * window: 0.9 where communication is at most 0.8 of it, 0.8 at about the
 * window.
 */
export function etaTarget(ratio: number): number {
  return ratio <= 0.8 ? 0.9 : 0.8;
}

/** The case of `name` run serially (`overlap: false`) beside it, for the compute its overlap adds. */
export function serialTwin(c: OverlapCase): OverlapCase {
  return { ...c, name: `${c.name}/serial`, schedule: { ...c.schedule, overlap: false } };
}

/** The case of ScMoE Pos-2 with communication `ratio` of its forward window. */
function windowCase(ratio: number): string {
  return `scmoe-pos2/comm-x${ratio}-window`;
}

/** One-way latency of the emulated links. */
export const LATENCY_S = 2e-4;

/**
 * The benchmark's entry point, on a command line of {@linkcode OVERLAP_COMMAND};
 * `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runOverlapBench(args: string[]): Promise<void> {
  const f = parseCommand(OVERLAP_COMMAND, args);
  if (f.help) return console.log(usage(OVERLAP_COMMAND));
  if (f.has("explain")) return console.log(explainVariants());
  const from = fromFlag(f, "from", "overlap_trace.json");
  const values = { json: f.has("json"), quick: f.has("quick"), out: pathFlag(f, "out") };
  if (from !== undefined) return await redrawOverlapTimeline(from);
  const quick = values.quick;
  const pair = { ...PAIR, nEmbd: quick ? 128 : 256 };
  const rows = quick ? 4 : 8, seq = 64;
  // Measured once the profile and any chunk trial are over.
  const warmup = SETTLED_AFTER_STEPS, measured = 8;
  const steps = warmup + measured;
  const log = (s: string) => values.json || console.error(s);
  // Calibrate on an unshaped link: serial top-2 (its block compute and bytes) and ScMoE
  // Pos-2 (its forward window and bytes); the fixed cost of communication is the
  // unshaped transfer time.
  const calSteps = 5, calFrom = 2;
  const calibration = await runOnRanks(
    [["top2", { overlap: false }], ["scmoe-pos2", {}]].map(([name, schedule]) => ({
      name: name as string,
      model: { ...pair, variant: name === "top2" ? "top2" : "scmoe", pos: 2 },
      schedule: schedule as OverlapCase["schedule"],
      steps: calSteps,
      rows,
      seq,
      traceFrom: calFrom,
    })),
  );
  const [top2Cal, pos2Cal] = [0, 1].map((i) => calibration.map((r) => r[i]));
  const unshaped = (cal: CaseResult[]) => ({
    fixedMs: exchangeFigure(cal, calFrom, (f) => f.commMs),
    bytes: blockBytes(cal[0].reports[calSteps - 1]),
    calls: 4,
  });
  const computeMs = figure(top2Cal, calFrom, (r) => r.computeMs);
  // Communication about half of the serial top-2 block (comm = compute).
  const halfLink = linkForComm(unshaped(top2Cal), computeMs, LATENCY_S);
  // The regime the paper hides: Pos-2's all-to-alls of each pass shorter than its forward window.
  const windowMs = transferFigure(pos2Cal, calFrom, (f) => f.blocks[0].forward.windowMs);
  const windowLinks = WINDOW_RATIOS.map((ratio) =>
    linkForComm(unshaped(pos2Cal), 2 * ratio * windowMs, LATENCY_S)
  );
  const mbps = (l: LinkModel) => `${(l.bandwidthBytesPerS / 1e6).toFixed(2)} MB/s`;
  log(
    `calibration (unshaped): top-2 block compute ${computeMs.toFixed(1)} ms -> half-of-top-2 ` +
      `link ${mbps(halfLink)}; Pos-2 forward window ${windowMs.toFixed(1)} ms -> links ` +
      windowLinks.map((l, i) => `${mbps(l)} (x${WINDOW_RATIOS[i]})`).join(", ") +
      " for each pass's communication that share of it",
  );
  const caseOf = ([name, model, schedule]: (typeof VARIANTS)[0]): OverlapCase => ({
    name,
    model: { ...pair, ...model },
    schedule,
    steps,
    rows,
    seq,
    traceStep: steps - 1,
    traceFrom: warmup,
  });
  const cases = VARIANTS.map(caseOf);
  const pos2 = caseOf(VARIANTS.find(([name]) => name === "scmoe-pos2")!);
  // Variants interleaved step by step, so that machine noise hits them alike; Pos-2's
  // serial twin beside them says what compute its overlapped path adds.
  const mainRun = await runOnRanks([...cases, serialTwin(pos2)], {
    link: halfLink,
    interleave: true,
  });
  const perRank = mainRun.map((r) => r.slice(0, cases.length));
  const pos2Serial = mainRun.map((r) => r[cases.length]);
  // Each ratio's run is repeated on a recalibrated link while its own measured ratio
  // (all-to-alls per pass over the forward window) misses by more than 0.1 (at most 4 runs);
  // the closest is kept.
  const pos2Bytes = unshaped(pos2Cal).bytes;
  const windowRanks: CaseResult[][] = [];
  const windowSerial: CaseResult[][] = [];
  for (const [i, ratio] of WINDOW_RATIOS.entries()) {
    let best:
      | { got: number; results: CaseResult[]; serial: CaseResult[]; link: LinkModel }
      | undefined;
    const tried: ShareTrial[] = [];
    for (let round = 1; round <= 4; round++) {
      const both = await runOnRanks([pos2, serialTwin(pos2)], {
        link: windowLinks[i],
        interleave: true,
      });
      const results = both.map((r) => r[0]);
      const w = transferFigure(results, warmup, (f) => f.blocks[0].forward.windowMs);
      const c = exchangeFigure(results, warmup, (f) => f.commMs);
      const got = windowRatio(results, warmup, "forward");
      log(
        `${windowCase(ratio)} run ${round}: link ${mbps(windowLinks[i])} -> ratio ${
          got.toFixed(3)
        }`,
      );
      if (!best || Math.abs(got - ratio) < Math.abs(best.got - ratio)) {
        best = { got, results, serial: both.map((r) => r[1]), link: windowLinks[i] };
      }
      if (Math.abs(got - ratio) <= 0.1) break;
      // Recalibrated from the runs so far (interpolated once they bracket the ratio).
      const wireOf = (l: LinkModel) => (pos2Bytes / l.bandwidthBytesPerS) * 1e3;
      tried.push({ wireMs: wireOf(windowLinks[i]), share: got });
      const corrected = correctLink(windowLinks[i], pos2Bytes, 2 * ratio * w, c);
      const next = nextWireMs(tried, ratio, wireOf(corrected));
      windowLinks[i] = { ...windowLinks[i], bandwidthBytesPerS: pos2Bytes / (next / 1e3) };
    }
    windowRanks.push(best!.results);
    windowSerial.push(best!.serial);
    windowLinks[i] = best!.link;
  }
  const out: BenchRow[] = [];
  const report = (name: string, results: CaseResult[], serial?: CaseResult[]) => {
    for (const line of results[0].decisions) log(`${name}: rank 0 ${line}`);
    const metric = (metric: string, unit: string, value: number) =>
      out.push({ bench: "overlap", case: name, metric, value, unit });
    const issued = (pick: (r: OverlapReport) => number | null) => figure(results, warmup, pick);
    const moved = (pick: (f: BlockFigures) => number | null) =>
      transferFigure(results, warmup, pick);
    // The group's figures (see groupFigures): eta and where the block's time above its bound goes.
    const grouped = (pick: (g: GroupFigures) => number | null) =>
      blockGroupFigure(results, warmup, pick);
    metric("hidden_fraction", "ratio", moved((f) => f.hiddenFraction));
    metric("eta", "ratio", grouped((g) => g.eta));
    metric("eta_rank_median", "ratio", moved((f) => f.eta));
    metric("comm_ms", "ms", moved((f) => f.commMs));
    metric("group_comm_ms", "ms", grouped((g) => g.commMs));
    metric("compute_ms", "ms", issued((r) => r.computeMs));
    metric("window_ms", "ms", issued((r) => r.windowMs));
    metric("comm_window_ratio_fwd", "ratio", windowRatio(results, warmup, "forward"));
    metric("comm_window_ratio_bwd", "ratio", windowRatio(results, warmup, "backward"));
    metric("block_ms", "ms", issued((r) => r.spanMs));
    metric("step_ms", "ms", groupFigure(results, warmup, (r) => r.stepMs));
    metric("hidden_fraction_with_skew", "ratio", issued((r) => r.hiddenFraction));
    metric("eta_with_skew", "ratio", issued((r) => r.eta));
    metric("comm_ms_with_skew", "ms", issued((r) => r.commMs));
    const gap = (pick: (g: BoundGap) => number) => grouped((g) => pick(g.gap));
    metric("serial_ms", "ms", grouped((g) => g.computeMs + g.commMs));
    metric("bound_ms", "ms", grouped((g) => g.boundMs));
    metric("group_block_ms", "ms", grouped((g) => g.spanMs));
    metric("bound_gap_ms", "ms", gap((g) => g.totalMs));
    metric("exposed_over_bound_ms", "ms", gap((g) => g.exposedMs));
    metric("handoff_ms", "ms", gap((g) => g.handoffMs));
    metric("skew_ms", "ms", gap((g) => g.skewMs));
    metric("overhead_ms", "ms", gap((g) => g.overheadMs));
    metric("rank_imbalance_ms", "ms", grouped((g) => g.imbalanceMs));
    const exchanges = moved((f) => f.exchanges);
    metric("handoff_per_exchange_ms", "ms", moved((f) => f.handoffMs / f.exchanges));
    const parts = [
      `exposed beyond the bound ${ms(gap((g) => g.exposedMs))}`,
      `hand-off ${ms(gap((g) => g.handoffMs))} ` +
      `(${ms(moved((f) => f.handoffMs / f.exchanges))} per exchange, ${exchanges} a step)`,
      `skew ${ms(gap((g) => g.skewMs))} (rank imbalance ${ms(grouped((g) => g.imbalanceMs))}, ` +
      `in the bound)`,
      `overhead ${ms(gap((g) => g.overheadMs))}`,
    ];
    if (serial) {
      const serialCompute = figure(serial, warmup, (r) => r.computeMs);
      metric("added_compute_ms", "ms", issued((r) => r.computeMs) - serialCompute);
      metric("serial_block_ms", "ms", figure(serial, warmup, (r) => r.spanMs));
      metric("serial_step_ms", "ms", groupFigure(serial, warmup, (r) => r.stepMs));
      parts.push(
        `compute ${ms(issued((r) => r.computeMs) - serialCompute)} more than serially ` +
          `(${ms(serialCompute)})`,
      );
    }
    log(
      `${name}: block ${ms(grouped((g) => g.spanMs))}, bound ${ms(grouped((g) => g.boundMs))}, ` +
        `serial ${ms(grouped((g) => g.computeMs + g.commMs))}, eta ${
          formatNumber(grouped((g) => g.eta))
        }; above the bound ${ms(gap((g) => g.totalMs))}: ${parts.join(", ")} (medians)`,
    );
  };
  cases.forEach((c, i) =>
    report(c.name, perRank.map((r) => r[i]), c.name === pos2.name ? pos2Serial : undefined)
  );
  WINDOW_RATIOS.forEach((ratio, i) => report(windowCase(ratio), windowRanks[i], windowSerial[i]));
  const link = (name: string, l: LinkModel) =>
    out.push({
      bench: "overlap",
      case: name,
      metric: "bandwidth",
      value: l.bandwidthBytesPerS / 1e6,
      unit: "MB/s",
    });
  link("link", halfLink);
  WINDOW_RATIOS.forEach((ratio, i) => link(`link/${windowCase(ratio)}`, windowLinks[i]));
  const got = (c: string, m: string) =>
    formatNumber(out.find((r) => r.case === c && r.metric === m)!.value as number);
  for (const ratio of WINDOW_RATIOS) {
    const c = windowCase(ratio);
    log(
      `target (communication at most the window is hidden, as in the paper): ${c}: ` +
        `communication ${got(c, "comm_window_ratio_fwd")} (forward) and ` +
        `${got(c, "comm_window_ratio_bwd")} (backward) of the window: hidden ` +
        `${got(c, "hidden_fraction")}, eta ${got(c, "eta")} (>= ${etaTarget(ratio)}), ` +
        `hand-off ${got(c, "handoff_per_exchange_ms")} ms per exchange (< 1)`,
    );
  }
  printRows(out, values.json);
  if (values.out) {
    await Deno.mkdir(values.out, { recursive: true });
    const traced = [
      ...cases.map((c, i) => {
        const results = perRank.map((r) => r[i]);
        const step = medianStep(results, warmup);
        return { name: c.name, ranks: results.map((r) => r.reports[step].ops ?? []) };
      }),
      ...WINDOW_RATIOS.map((ratio, i) => {
        const step = medianStep(windowRanks[i], warmup);
        return {
          name: windowCase(ratio),
          ranks: windowRanks[i].map((r) => r.reports[step].ops ?? []),
        };
      }),
    ];
    await Deno.writeTextFile(
      `${values.out}/overlap_trace.json`,
      JSON.stringify(chromeTrace(traced)),
    );
    await Deno.writeTextFile(`${values.out}/overlap_timeline.svg`, overlapTimelineSvg(traced));
    log(`wrote ${values.out}/overlap_trace.json and ${values.out}/overlap_timeline.svg`);
  }
}

/**
 * The overlap benchmark's timeline: the variants' runs of `traced` (the
 * {@linkcode VARIANTS}, one step each), without the Pos-2 window cases,
 * which stay in the Chrome trace.
 */
export function overlapTimelineSvg(traced: TracedRun[]): string {
  const variants = new Set(VARIANTS.map(([name]) => name));
  return timelineSvg(traced.filter((r) => variants.has(r.name)));
}

/** Draws `DIR/overlap_timeline.svg` again from `DIR/overlap_trace.json`. */
export async function redrawOverlapTimeline(dir: string): Promise<void> {
  const trace = JSON.parse(await Deno.readTextFile(`${dir}/overlap_trace.json`));
  await Deno.writeTextFile(
    `${dir}/overlap_timeline.svg`,
    overlapTimelineSvg(fromChromeTrace(trace)),
  );
  console.error(`wrote ${dir}/overlap_timeline.svg`);
}

/** Each variant's overlap plan: which compute steps each of its all-to-alls overlaps. */
function explainVariants(): string {
  return VARIANTS.map(([name, model, schedule]) =>
    `${name}\n${
      explainOverlap(gpt(resolveConfig({ ...PAIR, ...model })), new OverlapScheduler(schedule))
    }`
  ).join("\n\n");
}
