/**
 * The adaptive side of the overlap schedule, kept across steps: for each
 * gate use, the slot of its expert computation in its window and the
 * pipelining degree. Op times of the first steps are profiled, the slot is
 * chosen with {@linkcode chooseSlot} (re-chosen when the times drift, by
 * {@linkcode SlotPlanner}) and the chunk count with {@linkcode chooseChunks};
 * each decision is logged with its reason.
 *
 * @module
 */

import type { Communicator } from "../collectives/types.ts";
import type { ModelConfig } from "./config.ts";
import {
  chooseChunks,
  type PlannerOptions,
  SlotPlanner,
  type WindowTimes,
} from "./overlap_strategy.ts";
import type { BlockLayout, TimedOp } from "./overlap_report.ts";
import { pipelineGate, type Step } from "./program.ts";
import { blockLayout, type GateWindow, gateWindows, scheduleProgram } from "./schedule.ts";
import { median } from "./stats.ts";

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
   * Chunks to pipeline each gate use's dispatch, experts and combine
   * (Tutel-style): a number, or `"auto"`: chosen once after profiling, for
   * gates whose communication is longer than their window (default 1).
   * `top2` with `chunks: "auto"` is the pipelined top-2 baseline.
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
  /** Blocks and windows of the steps, for the figures. */
  layout: BlockLayout;
  /** Slot of each gate use. */
  slots: Record<string, number>;
  /** Chunks of each gate use. */
  chunks: Record<string, number>;
}

interface GateState {
  window: GateWindow;
  planner: SlotPlanner;
  slot: number;
  chunks: number;
  /** Profiles kept until the chunk count is decided. */
  profile: WindowTimes[] | null;
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
    const slots = Object.fromEntries(states.map((g) => [g.window.gate, g.slot]));
    const chunks = Object.fromEntries(states.map((g) => [g.window.gate, g.chunks]));
    if (!this.overlap) {
      return { steps: serial, layout: blockLayout(serial, windows), slots, chunks };
    }
    let steps = serial;
    for (const g of states) steps = pipelineGate(this.#cfg, steps, g.window.gate, g.chunks);
    steps = scheduleProgram(steps, windows, new Map(Object.entries(slots)));
    return { steps, layout: blockLayout(steps, windows), slots, chunks };
  }

  /**
   * Learns from one step's timed ops; returns the decisions made (each also
   * sent to `log`). Every rank must call it after the same steps: the chunk
   * count is decided on times averaged over the group, so that all ranks
   * pipeline alike.
   */
  async observe(ops: TimedOp[], comm: Communicator, tag: string): Promise<string[]> {
    if (!this.overlap) return [];
    const lines: string[] = [];
    const deciding: GateState[] = [];
    for (const g of this.#gates.values()) {
      const times = windowTimes(ops, g.window);
      if (!times) continue;
      if (this.#opts.slot === "auto" || this.#opts.slot === undefined) {
        const choice = g.window.ops.length > 0 ? g.planner.observe(times) : null;
        if (choice) {
          g.slot = choice.slot;
          lines.push(
            `${g.window.gate}: expert computation in slot ${choice.slot}: ${choice.reason}`,
          );
        }
      }
      if (g.profile) {
        g.profile.push(times);
        if (g.profile.length >= (this.#opts.planner?.warmupSteps ?? 3)) deciding.push(g);
      }
    }
    if (deciding.length) lines.push(...await this.#decideChunks(deciding, comm, tag));
    for (const line of lines) this.#opts.log?.(line);
    return lines;
  }

  #start(window: GateWindow): GateState {
    const fixed = this.#opts.slot;
    const n = window.ops.length;
    return {
      window,
      planner: new SlotPlanner(n, this.#opts.planner),
      slot: typeof fixed === "number" ? Math.max(0, Math.min(n, fixed)) : Math.ceil(n / 2),
      chunks: typeof this.#opts.chunks === "number" ? Math.max(1, this.#opts.chunks) : 1,
      profile: this.#opts.chunks === "auto" && this.overlap ? [] : null,
    };
  }

  async #decideChunks(gates: GateState[], comm: Communicator, tag: string): Promise<string[]> {
    const fields = (
      t: WindowTimes,
    ) => [t.backbone.reduce((a, b) => a + b, 0), t.dispatchMs, t.expertMs, t.combineMs];
    const local = gates.flatMap((g) => {
      const rows = g.profile!.map(fields);
      return rows[0].map((_, i) => median(rows.map((r) => r[i])));
    });
    const mean = await comm.allreduce(Float32Array.from(local), "mean", { tag });
    return gates.map((g, j) => {
      const [windowMs, dispatchMs, expertMs, combineMs] = mean.subarray(4 * j, 4 * j + 4);
      const times = { backbone: [windowMs], dispatchMs, expertMs, combineMs };
      const comm = dispatchMs + combineMs;
      const overhead = this.#opts.chunkOverheadMs ?? 0.5;
      g.chunks = comm > windowMs ? chooseChunks(times, overhead) : 1;
      g.profile = null;
      return `${g.window.gate}: ${g.chunks} chunk(s): communication ${comm.toFixed(2)} ms, ` +
        `window ${windowMs.toFixed(2)} ms, experts ${expertMs.toFixed(2)} ms, ` +
        `${overhead} ms per chunk and stage`;
    });
  }
}

/** One gate use's forward times in a step, or null when it did not run there. */
export function windowTimes(ops: TimedOp[], window: GateWindow): WindowTimes | null {
  const fwd = ops.filter((o) => o.phase === "fwd");
  const total = (keep: (o: TimedOp) => boolean) =>
    fwd.filter(keep).reduce((s, o) => s + o.endMs - o.startMs, 0);
  const { gate } = window;
  const isComm = (kind: string) => (o: TimedOp) =>
    o.kind === "comm" && (o.name === `${gate}.${kind}` || o.name.startsWith(`${gate}.${kind}.c`));
  if (!fwd.some(isComm("dispatch"))) return null;
  return {
    backbone: window.ops.map((name) => total((o) => o.kind === "op" && o.name === name)),
    dispatchMs: total(isComm("dispatch")),
    expertMs: total((o) => o.kind === "op" && o.name.startsWith(`${gate}.experts`)),
    combineMs: total(isComm("combine")),
  };
}
