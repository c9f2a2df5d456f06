/**
 * The adaptive side of the overlap schedule, kept across steps: for each
 * gate use, the slot of its expert computation in its window and the
 * pipelining degree. Op times of the first steps are profiled, the slot is
 * chosen with {@linkcode chooseSlot} (re-chosen when the times drift, by
 * {@linkcode SlotPlanner}) and the chunk count with {@linkcode chooseChunks},
 * then confirmed by measurement: the modelled count and one chunk each run
 * for a few steps and the one whose MoE block took less time stays (the
 * model counts a fixed cost per chunk, but on a CPU small matmuls, the split
 * and the merge and their gradients cost more than that). Each decision is
 * logged with its reason.
 *
 * @module
 */

import type { Communicator } from "../collectives/types.ts";
import type { ModelConfig } from "./config.ts";
import {
  chooseChunks,
  PLANNER_WARMUP_STEPS,
  type PlannerOptions,
  SlotPlanner,
  type WindowTimes,
} from "./overlap_strategy.ts";
import type { BlockLayout, BlockOverlap, TimedOp } from "./overlap_report.ts";
import { pipelineGate, type Step } from "./program.ts";
import {
  backwardOrder,
  blockLayout,
  type GateWindow,
  gateWindows,
  scheduleProgram,
} from "./schedule.ts";
import { median, sum } from "./stats.ts";

/** How a run is scheduled; every field has a default. */
export interface ScheduleOptions {
  /**
   * Overlap communication with compute (default true). False is standard
   * expert parallelism: each all-to-all is awaited as soon as it is issued,
   * steps run in the serial program order.
   */
  overlap?: boolean;
  /**
   * Slot of each gate use's expert computation in its window: a number of
   * window ops to run first (clamped to the window), or `"auto"` (default):
   * profiled, chosen and re-chosen on drift.
   */
  slot?: number | "auto";
  /**
   * Slot of each gate use's expert backward in its window's backward: a
   * number of window ops back-propagated first (the window's backward runs
   * its ops in reverse), or `"auto"`: planned on the backward's own measured
   * times. Default: `"auto"` when `slot` is, else the mirror of `slot` (the
   * backward walks the forward order in reverse).
   */
  backwardSlot?: number | "auto";
  /**
   * Chunks to pipeline each gate use's dispatch, experts and combine
   * (Tutel-style): a number, or `"auto"`: for gates whose communication is
   * longer than their window, chosen once after profiling by the pipeline
   * model and kept only if its measured block time beats one chunk's
   * ({@linkcode CHUNK_TRIAL_STEPS} steps each). Default: `"auto"`
   * when overlapping (the paper splits tokens when communication outgrows
   * the window), 1 in serial mode. `top2` with `chunks: "auto"` is the
   * pipelined top-2 baseline.
   */
  chunks?: number | "auto";
  /** Profiling and drift of the slot choice. */
  planner?: PlannerOptions;
  /** Cost of one pipeline stage of one chunk for {@linkcode chooseChunks}, in ms (default 0.5). */
  chunkOverheadMs?: number;
  /** Receives each decision line (decisions are also returned by {@linkcode OverlapScheduler.observe}). */
  log?: (line: string) => void;
}

/** A program ready to run, with what the report needs. */
export interface ScheduledProgram {
  /** The steps in execution order. */
  steps: Step[];
  /** The order the backward walks the steps in (see `backwardOrder` of `schedule.ts`). */
  backward: Step[];
  /** Blocks and windows of the steps, for the figures. */
  layout: BlockLayout;
  /** Slot of each gate use. */
  slots: Record<string, number>;
  /** Backward slot of each gate use (window ops back-propagated before its experts'). */
  backwardSlots: Record<string, number>;
  /** Chunks of each gate use. */
  chunks: Record<string, number>;
}

/** Steps each chunk count of a trial runs for (the median of their block times counts). */
export const CHUNK_TRIAL_STEPS = 2;

/**
 * Steps after which a default schedule has made every first decision: the
 * profile, then each chunk count of a trial. Benchmarks warm up this long.
 */
export const SETTLED_AFTER_STEPS = PLANNER_WARMUP_STEPS + 2 * CHUNK_TRIAL_STEPS;

/** Chunk counts being measured against each other, in the order they run. */
interface ChunkTrial {
  /** The counts. */
  candidates: number[];
  /** Block time (fwd + bwd span, group mean) of each step run with each count. */
  spans: number[][];
}

interface GateState {
  window: GateWindow;
  planner: SlotPlanner;
  slot: number;
  backwardPlanner: SlotPlanner;
  backwardSlot: number;
  chunks: number;
  /** Profiles kept until the chunk count is modelled. */
  profile: WindowTimes[] | null;
  /** The measurement that confirms (or overrules) the modelled chunk count. */
  trial: ChunkTrial | null;
}

/**
 * One schedule per model and kind of run (training, evaluation, forward):
 * {@linkcode plan} before a step, {@linkcode observe} after it.
 *
 * @example
 * ```ts
 * import { OverlapScheduler } from "./scheduler.ts";
 * import { buildProgram } from "./program.ts";
 * import { resolveConfig } from "./config.ts";
 * const cfg = resolveConfig({ variant: "scmoe", pos: 2 });
 * const scheduler = new OverlapScheduler(cfg, { slot: 2 });
 * scheduler.plan(buildProgram(cfg, true)).slots; // { "blocks.1.moe.gate": 2, "blocks.3.moe.gate": 2 }
 * ```
 */
export class OverlapScheduler {
  readonly #cfg: ModelConfig;
  readonly #opts: ScheduleOptions;
  readonly #gates = new Map<string, GateState>();

  /** A scheduler of `cfg`'s programs. */
  constructor(cfg: ModelConfig, opts: ScheduleOptions = {}) {
    this.#cfg = cfg;
    this.#opts = opts;
  }

  /** Whether exchanges overlap compute. */
  get overlap(): boolean {
    return this.#opts.overlap ?? true;
  }

  /** Orders (and pipelines) `serial`, a program in serial order, for this step. */
  plan(serial: Step[]): ScheduledProgram {
    const windows = gateWindows(serial);
    for (const w of windows) if (!this.#gates.has(w.gate)) this.#gates.set(w.gate, this.#start(w));
    const states = windows.map((w) => this.#gates.get(w.gate)!);
    const byGate = (pick: (g: GateState) => number) =>
      Object.fromEntries(states.map((g) => [g.window.gate, pick(g)]));
    const slots = byGate((g) => g.slot);
    const backwardSlots = byGate((g) => g.backwardSlot);
    const chunks = byGate((g) => g.chunks);
    if (!this.overlap) {
      const layout = blockLayout(serial, windows);
      return {
        steps: serial,
        backward: backwardOrder(serial),
        layout,
        slots,
        backwardSlots,
        chunks,
      };
    }
    let pipelined = serial;
    for (const g of states) pipelined = pipelineGate(this.#cfg, pipelined, g.window.gate, g.chunks);
    const steps = scheduleProgram(pipelined, windows, new Map(Object.entries(slots)));
    // The backward walks, in reverse, the order with the experts at the mirrored slot.
    const mirrored = new Map(
      states.map((g) => [g.window.gate, g.window.ops.length - g.backwardSlot]),
    );
    const backward = backwardOrder(scheduleProgram(pipelined, windows, mirrored));
    return { steps, backward, layout: blockLayout(steps, windows), slots, backwardSlots, chunks };
  }

  /**
   * Learns from one step's timed ops and its blocks' figures (`blockFigures`
   * of the same ops); returns the decisions made (each also
   * sent to `log`). Every rank must call it after the same steps: the chunk
   * count is decided on times averaged over the group, so that all ranks
   * pipeline alike.
   */
  async observe(
    ops: TimedOp[],
    blocks: BlockOverlap[],
    comm: Communicator,
    tag: string,
  ): Promise<string[]> {
    const profiling = [...this.#gates.values()].some((g) => g.profile || g.trial);
    if (!this.overlap || !(this.#autoSlot || this.#autoBackwardSlot || profiling)) return [];
    const lines: string[] = [];
    const deciding: GateState[] = [];
    const gates = [...this.#gates.values()];
    for (const [g, fwd, bwd, spanMs] of await groupTimes(ops, blocks, gates, comm, tag)) {
      const plan = g.window.ops.length > 0;
      if (plan && this.#autoSlot) {
        const choice = g.planner.observe(fwd);
        if (choice) {
          g.slot = choice.slot;
          lines.push(
            `${g.window.gate}: expert computation in slot ${choice.slot}: ${choice.reason}`,
          );
        }
      }
      if (plan && bwd && this.#autoBackwardSlot) {
        const choice = g.backwardPlanner.observe(bwd);
        if (choice) {
          g.backwardSlot = choice.slot;
          lines.push(
            `${g.window.gate}: expert backward in slot ${choice.slot}: ${choice.reason}`,
          );
        }
      }
      if (g.trial) lines.push(...this.#measureChunks(g, spanMs));
      else if (g.profile) {
        g.profile.push(fwd);
        if (g.profile.length >= (this.#opts.planner?.warmupSteps ?? PLANNER_WARMUP_STEPS)) {
          deciding.push(g);
        }
      }
    }
    for (const g of deciding) lines.push(this.#decideChunks(g));
    for (const line of lines) this.#opts.log?.(line);
    return lines;
  }

  get #autoSlot(): boolean {
    return this.#opts.slot === "auto" || this.#opts.slot === undefined;
  }

  get #autoBackwardSlot(): boolean {
    const b = this.#opts.backwardSlot;
    return b === "auto" || (b === undefined && this.#autoSlot);
  }

  #start(window: GateWindow): GateState {
    const fixed = this.#opts.slot;
    const n = window.ops.length;
    const clamp = (k: number) => Math.max(0, Math.min(n, k));
    const slot = typeof fixed === "number" ? clamp(fixed) : Math.ceil(n / 2);
    const back = this.#opts.backwardSlot;
    return {
      window,
      planner: new SlotPlanner(n, this.#opts.planner),
      slot,
      backwardPlanner: new SlotPlanner(n, this.#opts.planner),
      backwardSlot: typeof back === "number" ? clamp(back) : n - slot,
      chunks: typeof this.#opts.chunks === "number" ? Math.max(1, this.#opts.chunks) : 1,
      profile: (this.#opts.chunks ?? "auto") === "auto" && this.overlap ? [] : null,
      trial: null,
    };
  }

  #decideChunks(g: GateState): string {
    const rows = g.profile!.map((t) => [sum(t.backbone), t.dispatchMs, t.expertMs, t.combineMs]);
    const [windowMs, dispatchMs, expertMs, combineMs] = rows[0].map((_, i) =>
      median(rows.map((r) => r[i]))
    );
    const times = { backbone: [windowMs], dispatchMs, expertMs, combineMs };
    const comm = dispatchMs + combineMs;
    const overhead = this.#opts.chunkOverheadMs ?? 0.5;
    const modelled = comm > windowMs ? chooseChunks(times, overhead) : 1;
    g.profile = null;
    const why = `communication ${comm.toFixed(2)} ms, ` +
      `window ${windowMs.toFixed(2)} ms, experts ${expertMs.toFixed(2)} ms, ` +
      `${overhead} ms per chunk and stage`;
    if (modelled === 1) return `${g.window.gate}: 1 chunk(s): ${why}`;
    g.chunks = modelled;
    g.trial = { candidates: [modelled, 1], spans: [[], []] };
    return `${g.window.gate}: ${modelled} chunk(s) modelled (${why}); ` +
      `measuring ${modelled} and 1 chunk(s) for ${CHUNK_TRIAL_STEPS} steps each`;
  }

  /** Records a trial step's block time; once every count ran, keeps the fastest. */
  #measureChunks(g: GateState, spanMs: number): string[] {
    const t = g.trial!;
    const now = t.spans.findIndex((s) => s.length < CHUNK_TRIAL_STEPS);
    t.spans[now].push(spanMs);
    if (t.spans[now].length < CHUNK_TRIAL_STEPS) return [];
    if (now + 1 < t.candidates.length) {
      g.chunks = t.candidates[now + 1];
      return [];
    }
    const medians = t.spans.map((s) => median(s));
    const best = medians.indexOf(Math.min(...medians));
    g.chunks = t.candidates[best];
    g.trial = null;
    const measured = t.candidates.map((c, i) => `${c} chunk(s) ${medians[i].toFixed(2)} ms`);
    return [`${g.window.gate}: ${g.chunks} chunk(s): measured block time ${measured.join(", ")}`];
  }
}

/**
 * Each gate use's forward and backward times in a step and its MoE block's
 * time (forward and backward spans), averaged over the group (every rank
 * must call it after the same step), so that every rank plans alike: an
 * all-to-all completes when the last rank has issued it, so ranks that chose
 * different slots or chunks would wait on each other. Gates that did not run
 * are left out.
 */
async function groupTimes(
  ops: TimedOp[],
  blocks: BlockOverlap[],
  gates: GateState[],
  comm: Communicator,
  tag: string,
): Promise<[GateState, WindowTimes, WindowTimes | null, number][]> {
  const spans = new Map(blocks.map((b) => [b.block, b.spanMs]));
  const ran = gates.flatMap((g) => {
    const fwd = windowTimes(ops, g.window, "fwd");
    return fwd ? [[g, fwd, windowTimes(ops, g.window, "bwd")] as const] : [];
  });
  const flat = (t: WindowTimes) => [...t.backbone, t.dispatchMs, t.expertMs, t.combineMs];
  const local = ran.flatMap(([g, fwd, bwd]) => [
    spans.get(g.window.block) ?? 0,
    ...flat(fwd),
    ...(bwd ? flat(bwd) : []),
  ]);
  const mean = await comm.allreduce(Float32Array.from(local), "mean", { tag });
  let at = 0;
  const read = (n: number): WindowTimes => {
    const v = Array.from(mean.subarray(at, at += n + 3));
    return { backbone: v.slice(0, n), dispatchMs: v[n], expertMs: v[n + 1], combineMs: v[n + 2] };
  };
  return ran.map(([g, , bwd]) => {
    const n = g.window.ops.length;
    const spanMs = mean[at++];
    return [g, read(n), bwd ? read(n) : null, spanMs];
  });
}

/**
 * One gate use's times in one pass of a step, or null when it did not run
 * there. The backward's window is the forward's reversed: its first
 * exchange is the combine's gradient (towards the experts), its second the
 * dispatch's (back to the sources).
 */
export function windowTimes(
  ops: TimedOp[],
  window: GateWindow,
  phase: "fwd" | "bwd",
): WindowTimes | null {
  const mine = ops.filter((o) => o.phase === phase);
  const total = (keep: (o: TimedOp) => boolean) =>
    mine.filter(keep).reduce((s, o) => s + o.endMs - o.startMs, 0);
  const { gate } = window;
  const isComm = (kind: string) => (o: TimedOp) =>
    o.kind === "comm" && (o.name === `${gate}.${kind}` || o.name.startsWith(`${gate}.${kind}.c`));
  if (!mine.some(isComm("dispatch"))) return null;
  const names = phase === "fwd" ? window.ops : [...window.ops].reverse();
  const [first, second] = phase === "fwd" ? ["dispatch", "combine"] : ["combine", "dispatch"];
  return {
    backbone: names.map((name) => total((o) => o.kind === "op" && o.name === name)),
    dispatchMs: total(isComm(first)),
    expertMs: total((o) => o.kind === "op" && o.name.startsWith(`${gate}.experts`)),
    combineMs: total(isComm(second)),
  };
}
