/**
 * The adaptive strategy of the paper's overlap: in which slot of the overlap
 * window the expert computation runs, and how many chunks to pipeline when
 * communication is longer than the window.
 *
 * A window is the list of backbone ops `COMP_1..COMP_n` that may run while
 * the dispatch and the combine all-to-alls are in flight. Putting the expert
 * computation in slot K (after the first K ops) gives the modelled block time
 *
 *     T(K) = max(pre_K, T_disp) + T_expert + max(post_K, T_comb)
 *
 * with `pre_K` the backbone time before slot K and `post_K` the time after.
 *
 * @module
 */
import { median, sum } from "./stats.ts";

/** Measured (or modelled) times of one MoE block's window, in milliseconds. */
export interface WindowTimes {
  /** Backbone ops of the window, in program order: `COMP_1..COMP_n`. */
  backbone: number[];
  /** Dispatch all-to-all. */
  dispatchMs: number;
  /** Expert computation. */
  expertMs: number;
  /** Combine all-to-all. */
  combineMs: number;
}

/** The slot chosen for the expert computation and why. */
export interface SlotChoice {
  /** Number of backbone ops that run before the expert computation (0..n). */
  slot: number;
  /** Modelled block time with that slot. */
  modelledMs: number;
  /** Modelled block time of every slot, index = slot. */
  candidates: number[];
  /** One line saying why. */
  reason: string;
}

/** Modelled block time with the expert computation in `slot`. */
export function blockTime(t: WindowTimes, slot: number): number {
  const pre = sum(t.backbone.slice(0, slot));
  const post = sum(t.backbone.slice(slot));
  return Math.max(pre, t.dispatchMs) + t.expertMs + Math.max(post, t.combineMs);
}

/** The lower bound of the block: compute and communication fully overlapped. */
export function boundTime(t: WindowTimes): number {
  return Math.max(sum(t.backbone) + t.expertMs, t.dispatchMs + t.combineMs);
}

/** Picks the slot minimising the modelled block time (the earliest among equals). */
export function chooseSlot(t: WindowTimes): SlotChoice {
  validate(t);
  const candidates = Array.from({ length: t.backbone.length + 1 }, (_, k) => blockTime(t, k));
  let slot = 0;
  for (let k = 1; k < candidates.length; k++) if (candidates[k] < candidates[slot] - 1e-9) slot = k;
  const window = sum(t.backbone);
  const comm = t.dispatchMs + t.combineMs;
  const regime = comm < window ? "shorter than" : comm > window ? "longer than" : "equal to";
  const reason = `communication ${fmt(comm)} ms is ${regime} the window ${fmt(window)} ms; ` +
    `slot ${slot}/${t.backbone.length} models ${fmt(candidates[slot])} ms ` +
    `(serial ${fmt(window + t.expertMs + comm)}, bound ${fmt(boundTime(t))})`;
  return { slot, modelledMs: candidates[slot], candidates, reason };
}

/**
 * Pipelining degree for a window whose communication exceeds it: tokens are
 * split into `c` chunks whose dispatch, expert and combine stages overlap.
 * Modelled time of `c` chunks, with `overheadMs` paid per chunk and stage:
 *
 *     T(c) = (d + e + m) / c + (c - 1) * max(d, e, m) / c + 3 * c * overheadMs
 */
export function pipelineTime(t: WindowTimes, chunks: number, overheadMs: number): number {
  const d = t.dispatchMs, e = t.expertMs, m = t.combineMs;
  return (d + e + m) / chunks + (chunks - 1) * Math.max(d, e, m) / chunks + 3 * chunks * overheadMs;
}

/** The chunk count among `choices` with the least modelled pipeline time. */
export function chooseChunks(t: WindowTimes, overheadMs: number, choices = [1, 2, 4, 8]): number {
  validate(t);
  let best = choices[0];
  for (const c of choices) {
    if (pipelineTime(t, c, overheadMs) < pipelineTime(t, best, overheadMs) - 1e-9) best = c;
  }
  return best;
}

/** Steps profiled before the first decision, by default. */
export const PLANNER_WARMUP_STEPS = 3;

/** Options of {@linkcode SlotPlanner}. */
export interface PlannerOptions {
  /** Steps profiled before the first decision (default {@linkcode PLANNER_WARMUP_STEPS}). */
  warmupSteps?: number;
  /** Re-decide when an op's median time moves by more than this fraction (default 0.2). */
  driftFraction?: number;
  /** Profiles kept per op (the median of these is used; default 5). */
  history?: number;
}

/**
 * The adaptive part: collects op times of the first steps, decides the slot
 * from their medians, and decides again when the medians drift.
 */
export class SlotPlanner {
  readonly #samples: number[][] = [];
  #decidedOn: number[] | null = null;
  #choice: SlotChoice | null = null;
  readonly #opts: Required<PlannerOptions>;

  /** Builds a planner for windows of `nOps` backbone ops. */
  constructor(readonly nOps: number, opts: PlannerOptions = {}) {
    this.#opts = { warmupSteps: PLANNER_WARMUP_STEPS, driftFraction: 0.2, history: 5, ...opts };
  }

  /** The current choice, or null while still profiling. */
  get choice(): SlotChoice | null {
    return this.#choice;
  }

  /**
   * Records one step's times; returns a new choice when one was made (the
   * first after warm-up, or a re-decision after drift), else null.
   */
  observe(t: WindowTimes): SlotChoice | null {
    if (t.backbone.length !== this.nOps) {
      throw new RangeError(`expected ${this.nOps} backbone ops, got ${t.backbone.length}`);
    }
    const flat = [...t.backbone, t.dispatchMs, t.expertMs, t.combineMs];
    this.#samples.push(flat);
    if (this.#samples.length > this.#opts.history) this.#samples.shift();
    if (this.#samples.length < Math.min(this.#opts.warmupSteps, this.#opts.history)) return null;
    const medians = flat.map((_, i) => median(this.#samples.map((s) => s[i])));
    if (this.#decidedOn && !this.#drifted(medians)) return null;
    const times: WindowTimes = {
      backbone: medians.slice(0, this.nOps),
      dispatchMs: medians[this.nOps],
      expertMs: medians[this.nOps + 1],
      combineMs: medians[this.nOps + 2],
    };
    const next = chooseSlot(times);
    const changed = !this.#choice || this.#choice.slot !== next.slot;
    this.#decidedOn = medians;
    this.#choice = next;
    return changed ? next : null;
  }

  #drifted(medians: number[]): boolean {
    const total = sum(this.#decidedOn!);
    return medians.some((m, i) =>
      Math.abs(m - this.#decidedOn![i]) >
        this.#opts.driftFraction * Math.max(this.#decidedOn![i], total / medians.length)
    );
  }
}

function validate(t: WindowTimes): void {
  const named: [string, number][] = [
    ...t.backbone.map((v, i): [string, number] => [String(i), v]),
    ["d", t.dispatchMs],
    ["e", t.expertMs],
    ["m", t.combineMs],
  ];
  for (const [k, v] of named) {
    if (!(Number.isFinite(v) && v >= 0)) {
      throw new RangeError(`op time ${k} must be a finite non-negative number, got ${v}`);
    }
  }
}

function fmt(ms: number): string {
  return ms.toFixed(2);
}
