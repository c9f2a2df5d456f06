/**
 * The overlap of the ScMoE paper (Cai et al., "Shortcut-connected Expert
 * Parallelism for Accelerating Mixture-of-Experts", arXiv:2404.05019) as
 * orders of a {@linkcode Step} program, and the adaptive state that picks
 * them. For each gate application of an MoE layer:
 *
 * 1. Gate and dispatch as early as possible: right after the tap exists
 *    ({@linkcode serialOrder}).
 * 2. The window is the compute between them and the layer's output
 *    ({@linkcode gateWindows}; ScMoE Pos-2: `MLP_l, Attn_{l+1}, SE`). The
 *    expert computation, and the combine issued right after it, run in slot
 *    K of the window, after its first K ops ({@linkcode scheduleProgram}).
 * 3. The combined rows are consumed as late as possible: by the output step,
 *    right before the residual add.
 * 4. The backward walks the steps in reverse and issues each gradient
 *    all-to-all as soon as it is complete ({@linkcode backwardOrder}).
 * 5. When communication is longer than the window, the rows are split into
 *    chunks whose exchanges and experts pipeline ({@linkcode pipelineGate}).
 *
 * K and the chunk count come from the times of the window's ops, modelled
 * by `T(K) = max(pre_K, T_disp) + T_expert + max(post_K, T_comb)`
 * ({@linkcode chooseSlot}, {@linkcode chooseChunks}). An
 * {@linkcode OverlapScheduler}, which the caller holds, profiles the first
 * steps, decides, and decides again when the times drift; its
 * {@linkcode OverlapScheduler.gates} show the state, and
 * {@linkcode explainOverlap} prints which compute each exchange overlaps.
 *
 * @module
 */

import type { Communicator } from "../collectives/types.ts";
import type { BlockLayout, BlockOverlap, TimedOp } from "./overlap_report.ts";
import { median, sum } from "./stats.ts";
import { copy, scaleCost } from "./cost.ts";
import {
  chunkRows,
  type ComputeStep,
  computeStep,
  type ExchangeStep,
  type MoePart,
  type Network,
  type RouteStep,
  type Step,
} from "./steps.ts";
import * as tf from "@tensorflow/tfjs";

// ---------------------------------------------------------------------------
// The order: pure functions of a program.

/** One gate application's overlap window. */
export interface GateWindow {
  /** The gate application (its route step's name). */
  gate: string;
  /** Its MoE layer. */
  layer: string;
  /** The layer's block index in reports. */
  block: number;
  /** Names of the window's backbone ops `COMP_1..COMP_n`, in program order. */
  ops: string[];
}

function isExchange(s: Step): s is ExchangeStep {
  return s.kind === "dispatch" || s.kind === "combine";
}

/** The values a step reads. */
function inputsOf(s: Step): string[] {
  return isExchange(s) ? [s.input] : s.inputs;
}

/** The values a step makes (a route step makes a route, not a value). */
function outputsOf(s: Step): string[] {
  if (isExchange(s)) return [s.output];
  return s.kind === "compute" ? s.outputs : [];
}

/** The gate application whose chain `s` belongs to (route, gate, exchanges, experts, split, merge). */
function chainOf(s: Step): string | undefined {
  if (s.kind === "route") return s.name;
  return isExchange(s) ? s.route : s.moe?.gate;
}

function roleOf(s: Step): MoePart["role"] | undefined {
  return s.moe?.role;
}

/** The index of layer `layer`'s output step, which consumes its gates' combined rows. */
function outputIndex(program: Step[], layer: string): number {
  return program.findIndex((s) => s.moe?.role === "output" && s.moe.layer === layer);
}

/**
 * `program` with each gate application's chain (route, gate, dispatch,
 * experts, combine) moved up to right after the step that makes its tap:
 * standard expert parallelism's order, the one without overlap, from which
 * the schedule starts. The rest keeps its order.
 *
 * @example
 * ```ts
 * import { serialOrder } from "./scheduler.ts";
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const steps = serialOrder(gpt(resolveConfig({ variant: "scmoe", pos: 2 })).program(true));
 * steps.slice(1, 4).map((s) => s.name); // ["blocks.0.attn", "blocks.1.moe.gate", "blocks.1.moe.gate"]
 * ```
 */
export function serialOrder(program: Step[]): Step[] {
  let order = [...program];
  for (const route of program.filter((s): s is RouteStep => s.kind === "route")) {
    const chain = order.filter((s) => chainOf(s) === route.name);
    const rest = order.filter((s) => chainOf(s) !== route.name);
    const made = new Set(chain.flatMap(outputsOf));
    const needs = new Set(chain.flatMap(inputsOf).filter((v) => !made.has(v)));
    let at = -1;
    rest.forEach((s, j) => {
      const before = route.after.includes(chainOf(s) ?? "");
      if (before || outputsOf(s).some((v) => needs.has(v))) at = j;
    });
    rest.splice(at + 1, 0, ...chain);
    order = rest;
  }
  assertDependencies(order);
  return order;
}

/**
 * Every gate application's overlap window in a program in serial order
 * ({@linkcode serialOrder}, pipelined or not): the compute steps between
 * its gate and its layer's output that are no gate's.
 *
 * @example
 * ```ts
 * import { gateWindows, serialOrder } from "./scheduler.ts";
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const net = gpt(resolveConfig({ variant: "scmoe", pos: 2 }));
 * gateWindows(serialOrder(net.program(true)))[0].ops;
 * // ["blocks.0.mlp", "blocks.1.attn", "blocks.1.moe.shared"]
 * ```
 */
export function gateWindows(program: Step[]): GateWindow[] {
  const layers: string[] = [];
  return program.filter((s): s is RouteStep => s.kind === "route").map((route) => {
    const layer = route.moe?.layer ?? route.name;
    if (!layers.includes(layer)) layers.push(layer);
    const from = program.findIndex((s) => roleOf(s) === "gate" && chainOf(s) === route.name);
    const ops = program.slice(from + 1, outputIndex(program, layer))
      .filter((s) => s.kind === "compute" && chainOf(s) === undefined)
      .map((s) => s.name);
    return { gate: route.name, layer, block: route.moe?.block ?? layers.indexOf(layer), ops };
  });
}

/**
 * Moves each gate application's expert computation into slot
 * `slots.get(gate)` of its window (clamped to `0..ops.length`; default 0)
 * and a pipelined gate's merge right before the output step. `program`
 * must be in serial order.
 */
export function scheduleProgram(
  program: Step[],
  windows: GateWindow[],
  slots: ReadonlyMap<string, number>,
): Step[] {
  let order = [...program];
  for (const { gate, layer, ops } of windows) {
    if (ops.length === 0) continue; // nothing to overlap: the chain stays as it is
    const slot = Math.max(0, Math.min(ops.length, Math.round(slots.get(gate) ?? 0)));
    const chain = order.filter((s) => chainOf(s) === gate && s.kind !== "route");
    const merge = chain.filter((s) => roleOf(s) === "merge");
    const unit = chain.slice(chain.findIndex((s) => roleOf(s) === "experts"))
      .filter((s) => !merge.includes(s));
    order = order.filter((s) => !unit.includes(s) && !merge.includes(s));
    const output = order[outputIndex(order, layer)];
    const anchor = slot < ops.length ? order.find((s) => s.name === ops[slot])! : output;
    order.splice(order.indexOf(anchor), 0, ...unit);
    order.splice(order.indexOf(output), 0, ...merge);
  }
  assertDependencies(order);
  return order;
}

/** Throws unless every step's inputs (and routes) are made by an earlier step. */
export function assertDependencies(steps: Step[]): void {
  const made = new Set<string>();
  const routed = new Set<string>();
  for (const s of steps) {
    for (const v of inputsOf(s)) {
      if (!made.has(v)) throw new Error(`step "${s.name}" reads "${v}" before it is made`);
    }
    const routes = isExchange(s) ? [s.route] : s.kind === "route" ? s.after : [];
    for (const r of routes) {
      if (!routed.has(r)) throw new Error(`step "${s.name}" runs before route "${r}"`);
    }
    if (s.kind === "route") routed.add(s.name);
    for (const v of outputsOf(s)) made.add(v);
  }
}

/**
 * The backward order of a forward order: reverse, except that each exchange
 * comes right after the last of its output's consumers (so its gradient
 * all-to-all is issued as soon as its gradient is complete, and overlaps
 * the backward of the steps that follow). Ready exchanges keep reverse
 * program order (a pipelined gate's last chunk goes first). Route steps have
 * no backward and are left out.
 */
export function backwardOrder(steps: Step[]): Step[] {
  const rev = steps.filter((s) => s.kind !== "route").reverse();
  const remaining = new Map<string, number>();
  for (const s of rev) for (const v of inputsOf(s)) remaining.set(v, (remaining.get(v) ?? 0) + 1);
  const out: Step[] = [];
  const done = new Set<Step>();
  const emit = (s: Step) => {
    out.push(s);
    done.add(s);
    for (const v of inputsOf(s)) remaining.set(v, remaining.get(v)! - 1);
  };
  for (const s of rev) {
    if (done.has(s)) continue;
    emit(s);
    for (const x of rev) {
      if (!done.has(x) && isExchange(x) && (remaining.get(x.output) ?? 0) === 0) emit(x);
    }
  }
  return out;
}

/**
 * Tutel-style pipelining of one gate application: its rows are split into
 * `chunks` chunks whose dispatch, expert and combine stages overlap. In a
 * program in serial order, replaces the gate's dispatch, experts and
 * combine with `split, d0, d1, e0, c0, d2, e1, c1, …, merge` (chunk j+1's
 * dispatch is in flight while chunk j's experts run, and chunk j's combine
 * while chunk j+1's experts run).
 *
 * @example
 * ```ts
 * import { pipelineGate, serialOrder } from "./scheduler.ts";
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const serial = serialOrder(gpt(resolveConfig({ variant: "top2" })).program(true));
 * const steps = pipelineGate(serial, "blocks.1.moe.gate", 2);
 * steps.some((s) => s.name === "blocks.1.moe.gate.experts.c1"); // true
 * ```
 */
export function pipelineGate(program: Step[], gate: string, chunks: number): Step[] {
  const at = program.findIndex((s) => s.kind === "dispatch" && s.route === gate);
  if (at < 0) throw new RangeError(`no dispatch of gate "${gate}"`);
  if (chunks <= 1) return program;
  const [dispatch, experts, combine] = program.slice(at, at + 3) as [
    ExchangeStep,
    ComputeStep,
    ExchangeStep,
  ];
  const chunkOf = experts.moe?.chunk;
  if (!chunkOf || combine.kind !== "combine" || dispatch.chunk) {
    throw new RangeError(`gate "${gate}" is already pipelined or reordered`);
  }
  const part = (role: MoePart["role"]): MoePart => ({ ...experts.moe!, role, chunk: undefined });
  const ids = Array.from({ length: chunks }, (_, j) => j);
  const exchange = (of: ExchangeStep, j: number): ExchangeStep => ({
    ...of,
    name: `${of.name}.c${j}`,
    input: `${of.input}.c${j}`,
    output: `${of.output}.c${j}`,
    chunk: { index: j, of: chunks },
    ...(of.cost ? { cost: (s) => ({ bytes: of.cost!(s).bytes / chunks }) } : {}),
  });
  /** Chunk j's expert computation: a chunk's share of the rows, the kernels of the whole. */
  const expertChunk = (j: number): ComputeStep => {
    const step = chunkOf(j, `${dispatch.output}.c${j}`, `${combine.input}.c${j}`);
    const whole = experts.cost;
    return whole ? { ...step, cost: (s) => scaleCost(whole(s), 1 / chunks) } : step;
  };
  /** Gathering every row once (split, merge): bytes of the rows the dispatch sends. */
  const gatherRows = dispatch.cost
    ? (s: Parameters<NonNullable<ExchangeStep["cost"]>>[0]) => ({
      ...copy(dispatch.cost!(s).bytes / s.bytesPerElement, 1, s.bytesPerElement),
      kernels: chunks,
    })
    : undefined;
  const split = computeStep({
    name: `${gate}.split`,
    inputs: { send: dispatch.input },
    outputs: Object.fromEntries(ids.map((j) => [`c${j}`, `${dispatch.input}.c${j}`])),
    run: ({ send }, _p, ctx) => {
      const per = ctx.routes.get(gate)!.perExpert;
      return Object.fromEntries(
        ids.map((j) => [`c${j}`, tf.gather(send, tf.tensor1d(chunkRows(per, j, chunks), "int32"))]),
      ); // [rows_j, C] each
    },
    ...(gatherRows ? { cost: gatherRows } : {}),
  }, part("split"));
  const merge = computeStep({
    name: `${gate}.merge`,
    inputs: Object.fromEntries(ids.map((j) => [`c${j}`, `${combine.output}.c${j}`])),
    outputs: { back: combine.output },
    run: (backs, _p, ctx) => {
      const per = ctx.routes.get(gate)!.perExpert;
      const order = Int32Array.from(ids.flatMap((j) => [...chunkRows(per, j, chunks)]));
      const inverse = new Int32Array(order.length);
      order.forEach((row, i) => (inverse[row] = i));
      const all = tf.concat(ids.map((j) => backs[`c${j}`])); // [rows, C], by chunk
      return { back: tf.gather(all, tf.tensor1d(inverse, "int32")) }; // [rows, C], by expert
    },
    ...(gatherRows ? { cost: gatherRows } : {}),
  }, part("merge"));
  const stages: Step[] = [split, exchange(dispatch, 0)];
  for (const j of ids) {
    if (j + 1 < chunks) stages.push(exchange(dispatch, j + 1));
    stages.push(expertChunk(j), exchange(combine, j));
  }
  stages.push(merge);
  return [...program.slice(0, at), ...stages, ...program.slice(at + 3)];
}

/**
 * Which MoE block each step of a scheduled program belongs to (every step
 * from the block's first route to its output step; a route step's op is
 * named `<gate>.route`, an exchange's issue `<exchange>.send`) and each
 * block's window ops, for `blockFigures`.
 */
export function blockLayout(steps: Step[], windows: GateWindow[]): BlockLayout {
  const blockOf = new Map<string, number>();
  const windowOps = new Map<number, Set<string>>();
  for (const layer of new Set(windows.map((w) => w.layer))) {
    const gates = windows.filter((w) => w.layer === layer);
    const { block } = gates[0];
    const from = Math.min(
      ...gates.map((w) => steps.findIndex((s) => s.kind === "route" && s.name === w.gate)),
    );
    for (const s of steps.slice(from, outputIndex(steps, layer) + 1)) {
      blockOf.set(s.kind === "route" ? `${s.name}.route` : s.name, block);
      if (isExchange(s)) blockOf.set(`${s.name}.send`, block);
    }
    windowOps.set(block, new Set(gates.flatMap((w) => w.ops)));
  }
  return { blockOf, windowOps };
}

// ---------------------------------------------------------------------------
// The model of a window's time.

/** Measured (or modelled) times of one gate application's window, in milliseconds. */
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

/** Modelled block time with the expert computation in `slot`: `max(pre_K, T_disp) + T_expert + max(post_K, T_comb)`. */
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
 * Modelled time of `chunks` pipelined chunks, with `overheadMs` paid per
 * chunk and stage:
 * `T(c) = (d + e + m) / c + (c - 1) * max(d, e, m) / c + 3 * c * overheadMs`.
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

function validate(t: WindowTimes): void {
  for (const v of [...t.backbone, t.dispatchMs, t.expertMs, t.combineMs]) {
    if (!(Number.isFinite(v) && v >= 0)) {
      throw new RangeError(`op times must be finite non-negative numbers, got ${v}`);
    }
  }
}

function fmt(ms: number): string {
  return ms.toFixed(2);
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
 * The adaptive slot: collects a window's times of the first steps, decides
 * the slot from their medians, and decides again when the medians drift.
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
    const next = chooseSlot({
      backbone: medians.slice(0, this.nOps),
      dispatchMs: medians[this.nOps],
      expertMs: medians[this.nOps + 1],
      combineMs: medians[this.nOps + 2],
    });
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

// ---------------------------------------------------------------------------
// The adaptive state, held by the caller.

/** How an {@linkcode OverlapScheduler} schedules; every field has a default. */
export interface ScheduleOptions {
  /**
   * Overlap communication with compute (default true). False is standard
   * expert parallelism: each all-to-all is awaited as soon as it is issued,
   * steps run in the serial order.
   */
  overlap?: boolean;
  /**
   * Slot of each gate application's expert computation in its window: a
   * number of window ops to run first (clamped to the window), or `"auto"`
   * (default): profiled, chosen and re-chosen on drift.
   */
  slot?: number | "auto";
  /**
   * Slot of each gate application's expert backward in its window's
   * backward: a number of window ops back-propagated first (the window's
   * backward runs its ops in reverse), or `"auto"`: planned on the
   * backward's own measured times. Default: `"auto"` when `slot` is, else
   * the mirror of `slot`.
   */
  backwardSlot?: number | "auto";
  /**
   * Chunks to pipeline each gate application's dispatch, experts and
   * combine: a number, or `"auto"`: for gates whose communication is longer
   * than their window, chosen once after profiling by
   * {@linkcode chooseChunks} and kept only if its measured block time beats
   * one chunk's ({@linkcode CHUNK_TRIAL_STEPS} steps each). Default:
   * `"auto"` when overlapping, 1 in serial mode. `top2` with `chunks:
   * "auto"` is the pipelined top-2 baseline.
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
  /** The order the backward walks the steps in ({@linkcode backwardOrder}). */
  backward: Step[];
  /** Whether exchanges overlap compute (false: each is awaited at once). */
  overlap: boolean;
  /** Each gate application's window. */
  windows: GateWindow[];
  /** Blocks and windows of the steps, for the figures. */
  layout: BlockLayout;
  /** Slot of each gate application. */
  slots: Record<string, number>;
  /** Backward slot of each gate application (window ops back-propagated before its experts'). */
  backwardSlots: Record<string, number>;
  /** Chunks of each gate application. */
  chunks: Record<string, number>;
}

/** Steps each chunk count of a trial runs for (the median of their block times counts). */
export const CHUNK_TRIAL_STEPS = 2;

/**
 * Steps after which a default schedule has made every first decision: the
 * profile, then each chunk count of a trial. Benchmarks warm up this long.
 */
export const SETTLED_AFTER_STEPS = PLANNER_WARMUP_STEPS + 2 * CHUNK_TRIAL_STEPS;

/** One gate application's schedule, as {@linkcode OverlapScheduler.gates} shows it. */
export interface GateSchedule {
  /** The gate application. */
  gate: string;
  /** Its window: the compute its exchanges may overlap. */
  window: GateWindow;
  /** Window ops run before its experts. */
  slot: number;
  /** Window ops back-propagated before its experts' backward. */
  backwardSlot: number;
  /** Pipelining chunks. */
  chunks: number;
  /**
   * `profiling` (collecting times before deciding the chunk count),
   * `trial` (measuring chunk counts against each other) or `settled`.
   */
  phase: "profiling" | "trial" | "settled";
  /** The forward times last observed (group means), or null before any. */
  forward: WindowTimes | null;
  /** The backward times last observed, or null before any. */
  backward: WindowTimes | null;
  /** Its decisions so far, with their reasons. */
  decisions: string[];
}

/** Chunk counts being measured against each other, in the order they run. */
interface ChunkTrial {
  /** The counts. */
  candidates: number[];
  /** Block time (fwd + bwd span, group mean) of each step run with each count. */
  spans: number[][];
}

interface GateState extends Omit<GateSchedule, "phase"> {
  planner: SlotPlanner;
  backwardPlanner: SlotPlanner;
  /** Profiles kept until the chunk count is modelled. */
  profile: WindowTimes[] | null;
  /** The measurement that confirms (or overrules) the modelled chunk count. */
  trial: ChunkTrial | null;
  /** Names of its steps in the last plan: for reading their times. */
  names: { dispatch: Set<string>; experts: Set<string>; combine: Set<string> };
}

/**
 * The overlap schedule of one kind of run of one model (training,
 * evaluation or forward passes): {@linkcode plan} before a step,
 * {@linkcode observe} after it. The caller holds it (a model holds one per
 * kind of run, `model.schedulers`, used unless a run is given its own) and
 * can look at it: {@linkcode gates}.
 *
 * @example
 * ```ts
 * import { OverlapScheduler } from "./scheduler.ts";
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const scheduler = new OverlapScheduler({ slot: 2 });
 * const plan = scheduler.plan(gpt(resolveConfig({ variant: "scmoe", pos: 2 })).program(true));
 * plan.slots; // { "blocks.1.moe.gate": 2, "blocks.3.moe.gate": 2 }
 * scheduler.gates[0].window.ops; // ["blocks.0.mlp", "blocks.1.attn", "blocks.1.moe.shared"]
 * ```
 */
export class OverlapScheduler {
  readonly #opts: ScheduleOptions;
  readonly #gates = new Map<string, GateState>();

  /** A scheduler with these options. */
  constructor(opts: ScheduleOptions = {}) {
    this.#opts = opts;
  }

  /** Whether exchanges overlap compute. */
  get overlap(): boolean {
    return this.#opts.overlap ?? true;
  }

  /** The schedule of every gate application planned so far: window, slots, chunks, times, decisions. */
  get gates(): GateSchedule[] {
    return [...this.#gates.values()].map((g) => ({
      gate: g.gate,
      window: g.window,
      slot: g.slot,
      backwardSlot: g.backwardSlot,
      chunks: g.chunks,
      phase: g.profile ? "profiling" : g.trial ? "trial" : "settled",
      forward: g.forward,
      backward: g.backward,
      decisions: [...g.decisions],
    }));
  }

  /** Orders (and pipelines) `program` for this step. */
  plan(program: Step[]): ScheduledProgram {
    const serial = serialOrder(program);
    const windows = gateWindows(serial);
    for (const w of windows) if (!this.#gates.has(w.gate)) this.#gates.set(w.gate, this.#start(w));
    const states = windows.map((w) => this.#gates.get(w.gate)!);
    const byGate = (pick: (g: GateState) => number) =>
      Object.fromEntries(states.map((g) => [g.gate, pick(g)]));
    const slots = byGate((g) => g.slot);
    const backwardSlots = byGate((g) => g.backwardSlot);
    const chunks = byGate((g) => this.overlap ? g.chunks : 1);
    let pipelined = serial;
    for (const g of states) pipelined = pipelineGate(pipelined, g.gate, chunks[g.gate]);
    // Times are read by step name: the chunks' steps, and the whole gate's.
    for (const g of states) g.names = stepNames([...serial, ...pipelined], g.gate);
    const common = { overlap: this.overlap, windows, slots, backwardSlots, chunks };
    if (!this.overlap) {
      const layout = blockLayout(serial, windows);
      return { steps: serial, backward: backwardOrder(serial), layout, ...common };
    }
    const steps = scheduleProgram(pipelined, windows, new Map(Object.entries(slots)));
    // The backward walks, in reverse, the order with the experts at the mirrored slot.
    const mirrored = new Map(states.map((g) => [g.gate, g.window.ops.length - g.backwardSlot]));
    const backward = backwardOrder(scheduleProgram(pipelined, windows, mirrored));
    return { steps, backward, layout: blockLayout(steps, windows), ...common };
  }

  /**
   * Learns from one step's timed ops and its blocks' figures (`blockFigures`
   * of the same ops); returns the decisions made (each also sent to `log`).
   * Every rank must call it after the same steps: decisions are made on
   * times averaged over the group, so that all ranks schedule alike.
   */
  async observe(
    ops: TimedOp[],
    blocks: BlockOverlap[],
    comm: Communicator,
    tag: string,
  ): Promise<string[]> {
    const profiling = [...this.#gates.values()].some((g) => g.profile || g.trial);
    if (!this.overlap || !(this.#autoSlot || this.#autoBackwardSlot || profiling)) return [];
    const lines: [GateState, string][] = [];
    const deciding: GateState[] = [];
    for (
      const [g, fwd, bwd, spanMs] of await groupTimes(
        ops,
        blocks,
        [...this.#gates.values()],
        comm,
        tag,
      )
    ) {
      g.forward = fwd;
      g.backward = bwd;
      const plan = g.window.ops.length > 0;
      if (plan && this.#autoSlot) {
        const choice = g.planner.observe(fwd);
        if (choice) {
          g.slot = choice.slot;
          lines.push([g, `${g.gate}: expert computation in slot ${choice.slot}: ${choice.reason}`]);
        }
      }
      if (plan && bwd && this.#autoBackwardSlot) {
        const choice = g.backwardPlanner.observe(bwd);
        if (choice) {
          g.backwardSlot = choice.slot;
          lines.push([g, `${g.gate}: expert backward in slot ${choice.slot}: ${choice.reason}`]);
        }
      }
      if (g.trial) {
        lines.push(...this.#measureChunks(g, spanMs).map((l): [GateState, string] => [g, l]));
      } else if (g.profile) {
        g.profile.push(fwd);
        if (g.profile.length >= (this.#opts.planner?.warmupSteps ?? PLANNER_WARMUP_STEPS)) {
          deciding.push(g);
        }
      }
    }
    for (const g of deciding) lines.push([g, this.#decideChunks(g)]);
    for (const [g, line] of lines) {
      g.decisions.push(line);
      this.#opts.log?.(line);
    }
    return lines.map(([, line]) => line);
  }

  /**
   * Decides every gate's slot, backward slot and chunk count from modelled
   * times (a simulator's or another cost model's) instead of measured ones:
   * what {@linkcode observe} settles on once profiling is over, by the same
   * rules ({@linkcode chooseSlot} on each pass's times where the slot is
   * `"auto"`, {@linkcode chooseChunks} where `chunks` is `"auto"` and
   * communication is longer than the window), fixed options kept.
   * `chunks` replaces the modelled chunk count of the gates it names (the
   * measured trial's stand-in: a simulator tries the count and 1). Every
   * gate is settled afterwards; returns the decision lines.
   *
   * @example
   * ```ts
   * import { OverlapScheduler } from "./scheduler.ts";
   * import { gpt } from "./gpt.ts";
   * import { resolveConfig } from "./config.ts";
   * const program = gpt(resolveConfig({ variant: "scmoe", pos: 2, nLayer: 2 })).program(true);
   * const scheduler = new OverlapScheduler();
   * const times = { backbone: [4, 3, 2], dispatchMs: 5, expertMs: 1, combineMs: 1 };
   * scheduler.decide(program, () => ({ forward: times, backward: null }));
   * scheduler.gates[0].slot; // 2: the dispatch (5 ms) hides behind the first two ops (7 ms)
   * ```
   */
  decide(
    program: Step[],
    times: (window: GateWindow) => { forward: WindowTimes; backward: WindowTimes | null },
    chunks: Record<string, number> = {},
  ): string[] {
    for (const w of gateWindows(serialOrder(program))) {
      if (!this.#gates.has(w.gate)) this.#gates.set(w.gate, this.#start(w));
    }
    const lines: string[] = [];
    for (const g of this.#gates.values()) {
      const { forward, backward } = times(g.window);
      g.forward = forward;
      g.backward = backward;
      const n = g.window.ops.length;
      if (n > 0 && this.overlap && this.#autoSlot) {
        const choice = chooseSlot(forward);
        g.slot = choice.slot;
        lines.push(`${g.gate}: expert computation in slot ${choice.slot}: ${choice.reason}`);
      }
      if (n > 0 && this.overlap && backward && this.#autoBackwardSlot) {
        const choice = chooseSlot(backward);
        g.backwardSlot = choice.slot;
        lines.push(`${g.gate}: expert backward in slot ${choice.slot}: ${choice.reason}`);
      }
      if (g.profile) {
        g.profile = [forward];
        lines.push(this.#decideChunks(g).replace(/; measuring .*$/, ")"));
      }
      g.trial = null;
      if (this.overlap && chunks[g.gate] !== undefined) {
        g.chunks = Math.max(1, Math.round(chunks[g.gate]));
        lines.push(`${g.gate}: ${g.chunks} chunk(s) (given)`);
      }
      g.decisions.push(...lines.filter((l) => l.startsWith(`${g.gate}:`)));
    }
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
      gate: window.gate,
      window,
      planner: new SlotPlanner(n, this.#opts.planner),
      slot,
      backwardPlanner: new SlotPlanner(n, this.#opts.planner),
      backwardSlot: typeof back === "number" ? clamp(back) : n - slot,
      chunks: typeof this.#opts.chunks === "number" ? Math.max(1, this.#opts.chunks) : 1,
      profile: (this.#opts.chunks ?? "auto") === "auto" && this.overlap ? [] : null,
      trial: null,
      forward: null,
      backward: null,
      decisions: [],
      names: { dispatch: new Set(), experts: new Set(), combine: new Set() },
    };
  }

  #decideChunks(g: GateState): string {
    const rows = g.profile!.map((t) => [sum(t.backbone), t.dispatchMs, t.expertMs, t.combineMs]);
    const [windowMs, dispatchMs, expertMs, combineMs] = rows[0].map((_, i) =>
      median(rows.map((r) => r[i]))
    );
    const comm = dispatchMs + combineMs;
    const overhead = this.#opts.chunkOverheadMs ?? 0.5;
    const modelled = comm > windowMs
      ? chooseChunks({ backbone: [windowMs], dispatchMs, expertMs, combineMs }, overhead)
      : 1;
    g.profile = null;
    const why = `communication ${comm.toFixed(2)} ms, ` +
      `window ${windowMs.toFixed(2)} ms, experts ${expertMs.toFixed(2)} ms, ` +
      `${overhead} ms per chunk and stage`;
    if (modelled === 1) return `${g.gate}: 1 chunk(s): ${why}`;
    g.chunks = modelled;
    g.trial = { candidates: [modelled, 1], spans: [[], []] };
    return `${g.gate}: ${modelled} chunk(s) modelled (${why}); ` +
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
    return [`${g.gate}: ${g.chunks} chunk(s): measured block time ${measured.join(", ")}`];
  }
}

/** The names of gate `gate`'s dispatch, expert and combine steps in `program`. */
function stepNames(program: Step[], gate: string): GateState["names"] {
  const mine = program.filter((s) => chainOf(s) === gate);
  const named = (keep: (s: Step) => boolean) => new Set(mine.filter(keep).map((s) => s.name));
  return {
    dispatch: named((s) => s.kind === "dispatch"),
    experts: named((s) => roleOf(s) === "experts"),
    combine: named((s) => s.kind === "combine"),
  };
}

/**
 * Each gate application's forward and backward times in a step and its MoE
 * block's time (forward and backward spans), averaged over the group (every
 * rank must call it after the same step), so that every rank plans alike:
 * an all-to-all completes when the last rank has issued it, so ranks that
 * chose different slots or chunks would wait on each other. Gates that did
 * not run are left out.
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
    const fwd = windowTimes(ops, g, "fwd");
    return fwd ? [[g, fwd, windowTimes(ops, g, "bwd")] as const] : [];
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
 * One gate application's times in one pass of a step, or null when it did
 * not run there. The backward's window is the forward's reversed: its first
 * exchange is the combine's gradient (towards the experts), its second the
 * dispatch's (back to the sources).
 */
function windowTimes(
  ops: TimedOp[],
  g: Pick<GateState, "window" | "names">,
  phase: "fwd" | "bwd",
): WindowTimes | null {
  const mine = ops.filter((o) => o.phase === phase);
  const total = (keep: (o: TimedOp) => boolean) =>
    mine.filter(keep).reduce((s, o) => s + o.endMs - o.startMs, 0);
  const comm = (names: Set<string>) => (o: TimedOp) => o.kind === "comm" && names.has(o.name);
  if (!mine.some(comm(g.names.dispatch))) return null;
  const backbone = phase === "fwd" ? g.window.ops : [...g.window.ops].reverse();
  const [first, second] = phase === "fwd"
    ? [g.names.dispatch, g.names.combine]
    : [g.names.combine, g.names.dispatch];
  return {
    backbone: backbone.map((name) => total((o) => o.kind === "op" && o.name === name)),
    dispatchMs: total(comm(first)),
    expertMs: total((o) => o.kind === "op" && g.names.experts.has(o.name)),
    combineMs: total(comm(second)),
  };
}

// ---------------------------------------------------------------------------
// What overlaps what.

/**
 * For a program (or a network's training program) as `scheduler` plans it
 * now, which compute steps each exchange overlaps: in the forward, the
 * steps that run between its issue and the first step that reads what it
 * receives; in the backward, likewise for its gradient exchange. A step of
 * yours that is not listed under an exchange does not hide it; one that
 * is in no gate's window cannot (the window runs from the gate's tap to
 * its layer's output).
 *
 * @example
 * ```ts
 * import { explainOverlap, OverlapScheduler } from "./scheduler.ts";
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const net = gpt(resolveConfig({ variant: "scmoe", pos: 2, nLayer: 2 }));
 * console.log(explainOverlap(net, new OverlapScheduler({ slot: 2 })));
 * // blocks.1.moe.gate: window blocks.0.mlp, blocks.1.attn, blocks.1.moe.shared; slot 2, backward slot 1, 1 chunk(s)
 * //   forward   blocks.1.moe.gate.dispatch  overlaps blocks.0.mlp, blocks.1.attn
 * //   forward   blocks.1.moe.gate.combine   overlaps blocks.1.moe.shared
 * //   ...
 * ```
 */
export function explainOverlap(
  program: Step[] | Network,
  scheduler: OverlapScheduler = new OverlapScheduler(),
): string {
  const steps = Array.isArray(program) ? program : program.program(true);
  const plan = scheduler.plan(steps);
  const lines: string[] = [];
  const overlapped = (order: Step[], x: ExchangeStep, phase: "fwd" | "bwd") => {
    if (!plan.overlap) return [];
    const from = order.indexOf(x);
    // Forward: the first step reading what x received; backward: the first making what x sent.
    const waits = phase === "fwd"
      ? (s: Step) => inputsOf(s).includes(x.output)
      : (s: Step) => outputsOf(s).includes(x.input);
    const to = order.findIndex((s, j) => j > from && waits(s));
    return order.slice(from + 1, to < 0 ? undefined : to)
      .filter((s) => s.kind === "compute")
      .map((s) => s.name);
  };
  for (const w of plan.windows) {
    lines.push(
      `${w.gate}: window ${w.ops.join(", ") || "(empty)"}; slot ${plan.slots[w.gate]}, ` +
        `backward slot ${plan.backwardSlots[w.gate]}, ${plan.chunks[w.gate]} chunk(s)` +
        (plan.overlap ? "" : "; no overlap: every exchange awaited at once"),
    );
    for (const [phase, order] of [["fwd", plan.steps], ["bwd", plan.backward]] as const) {
      for (const x of order.filter((s): s is ExchangeStep => isExchange(s) && s.route === w.gate)) {
        const names = overlapped(order, x, phase);
        const what = names.length ? `overlaps ${names.join(", ")}` : "overlaps nothing";
        lines.push(`  ${phase === "fwd" ? "forward " : "backward"}  ${x.name.padEnd(32)} ${what}`);
      }
    }
  }
  return lines.join("\n");
}
