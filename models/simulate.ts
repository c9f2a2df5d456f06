/**
 * The simulator: a model's own step program, in the order the overlap
 * scheduler plans it, replayed on a clock instead of a device. It answers
 * "what will ScMoE give on my cluster, at my expert-parallel size?" before
 * the run is paid for.
 *
 * - The program is the network's (`gpt(cfg).program`, or yours), planned by
 *   an {@linkcode OverlapScheduler} with its own rules: `serialOrder`, the
 *   gate windows, `chooseSlot` for each pass, `chooseChunks` where the
 *   exchanges outlast the window (then the faster of that count and one, as
 *   its measured trial keeps), all fed modelled times
 *   ({@linkcode OverlapScheduler.decide}).
 * - A compute step takes its cost (`cost.ts`: matmul FLOPs, element-wise
 *   bytes, kernels, tanh elements, host reads, written next to each step) at
 *   the device's rates (`hardware.ts`); its backward takes the device's
 *   `backwardFactor` times that.
 * - The steps run as `execute.ts` runs them: one compute stream per rank; an
 *   exchange is issued on it (a host read of the payload where the device
 *   sends from the host) and moves on one communication stream, in issue
 *   order, taking `alltoallS` of the topology over the expert-parallel
 *   ranks; the first step that reads its result waits for it (at once, in a
 *   schedule without overlap). The backward walks `plan.backward`, each
 *   gradient exchange issued as soon as its gradient is complete.
 * - The dense gradients are all-reduced over every rank (`ep * dp`) bucket
 *   by bucket (`bucketOf` of `grad_sync.ts`) as soon as the backward has
 *   completed a bucket, on a second stream; with `dp > 1` each expert's
 *   gradients too, over its `dp` replicas. The step ends when the compute
 *   and both streams are done (and, with `optimizer`, after AdamW's update).
 * - All ranks are alike (balanced routing, no skew): one rank's clock is the
 *   group's.
 *
 * The replay records {@linkcode TimedOp}s as a real run does, so the figures
 * come from the same `blockFigures` as measured ones: compute, the
 * all-to-alls in flight, the time the compute waited on them (exposed),
 * the hidden fraction.
 *
 * @module
 */

import { type ModelConfig, resolveConfig } from "./config.ts";
import { NO_COST, type StepCost, type StepShape } from "./cost.ts";
import { gpt } from "./gpt.ts";
import { bucketOf } from "./grad_sync.ts";
import {
  allreduceS,
  alltoallS,
  type DeviceRates,
  type Hardware,
  type Topology,
} from "./hardware.ts";
import { blockFigures, type BlockOverlap, type TimedOp } from "./overlap_report.ts";
import {
  type GateWindow,
  OverlapScheduler,
  type ScheduledProgram,
  type ScheduleOptions,
  serialOrder,
  type WindowTimes,
} from "./scheduler.ts";
import type { ExchangeStep, Network, Step } from "./steps.ts";

/** What is simulated besides the model: the hardware, the layout and the batch. */
export interface SimSetup {
  /** The hardware (a preset of `HARDWARE`, or your own). */
  hardware: Hardware;
  /** Expert-parallel ranks N: every MoE layer's experts are spread over them. */
  ep: number;
  /** Data-parallel replicas of the expert-parallel group (default 1): `ep * dp` ranks in all. */
  dp?: number;
  /** Sequences per rank and step, B. */
  batch: number;
  /** Tokens per sequence, T. */
  seq: number;
  /** Rows per routed choice relative to a balanced route (default 1; see `StepShape`). */
  rowsPerChoice?: number;
  /** Routed choices per token for the cost, instead of each layer's own (see `StepShape`). */
  routedK?: number;
  /** Add AdamW's update to the training step (default false: forward, backward, all-reduce). */
  optimizer?: boolean;
  /** Share of a device each rank computes with (default 1; below 1 when ranks share cores). */
  computeShare?: number;
  /** Bytes per gradient element in the all-reduce (default 4: float32 gradients). */
  gradBytes?: number;
  /** The links the gradient all-reduce crosses (default the hardware's topology). */
  allreduceTopology?: Topology;
}

/** One simulated run (a training step or a forward pass) of one rank. */
export interface SimPass {
  /** Wall time of the step. */
  stepMs: number;
  /** Compute on the compute stream (forward, backward, optimizer). */
  computeMs: number;
  /** All-to-alls in flight (the union of their intervals). */
  commMs: number;
  /** Compute waiting on an all-to-all in flight. */
  exposedMs: number;
  /** `commMs - exposedMs`. */
  hiddenMs: number;
  /** `1 - exposed / comm` (0 without communication). */
  hiddenFraction: number;
  /** Gradient all-reduces in flight (their stream's busy time). */
  allreduceMs: number;
  /** Compute waiting on the gradient all-reduces at the end of the step. */
  allreduceExposedMs: number;
  /** AdamW's update (0 unless `optimizer`). */
  optimizerMs: number;
  /** Model FLOPs of the step on this rank: forward matmuls, 3x in training (forward and backward). */
  modelFlops: number;
  /** Model FLOP utilisation: `modelFlops / stepMs` over the device's matmul rate. */
  mfu: number;
  /** Per MoE block, as `blockFigures` gives measured ones. */
  blocks: BlockOverlap[];
  /** The timed ops of the replay (a Chrome trace of it: `chromeTrace` of `trace.ts`). */
  ops: TimedOp[];
  /** The plan that was replayed. */
  plan: ScheduledProgram;
  /** The scheduler's decisions on the modelled times. */
  decisions: string[];
  /** Compute steps without a cost estimate (counted as free). */
  uncosted: string[];
}

/** The shapes of one rank's step in a setup. */
export function stepShape(setup: SimSetup, training: boolean): StepShape {
  return {
    batch: setup.batch,
    seq: setup.seq,
    tokens: setup.batch * setup.seq,
    ranks: setup.ep,
    training,
    bytesPerElement: setup.hardware.device.bytesPerElement,
    rowsPerChoice: setup.rowsPerChoice ?? 1,
    ...(setup.routedK ? { routedK: setup.routedK } : {}),
  };
}

/** Where a step's time goes: seconds by term of the cost model. */
export interface TimeBreakdown {
  /** Dense matrix multiplies. */
  matmul: number;
  /** Attention's per-head matrix multiplies. */
  batchedMatmul: number;
  /** Element-wise kernels' memory traffic. */
  memory: number;
  /** Gathers, transposes, concats, slices. */
  copies: number;
  /** GELU's tanh. */
  tanh: number;
  /** Per-kernel dispatch. */
  dispatch: number;
  /** Reads back to the host. */
  hostReads: number;
}

/** Seconds of one forward step of cost `c` on device `d`, by term of the cost model. */
export function timeBreakdown(c: StepCost, d: DeviceRates): TimeBreakdown {
  const ew = 1 / d.fusion;
  return {
    matmul: c.flops / d.matmulFlopsPerS,
    batchedMatmul: (c.batchedFlops ?? 0) / d.batchedFlopsPerS,
    memory: (c.bytes * ew) / d.memoryBytesPerS,
    copies: ((c.copyBytes ?? 0) * ew) / d.copyBytesPerS,
    tanh: (c.tanh ?? 0) / d.tanhPerS,
    dispatch: c.kernels * ew * d.kernelS,
    hostReads: c.hostBytes ? d.hostReadS + c.hostBytes / d.hostBytesPerS : 0,
  };
}

/** Seconds of one forward step of cost `c` on device `d` with `share` of it. */
export function computeS(c: StepCost, d: DeviceRates, share = 1): number {
  const t = timeBreakdown(c, d);
  let total = 0;
  for (const v of Object.values(t)) total += v;
  return total / share;
}

function isExchange(s: Step): s is ExchangeStep {
  return s.kind === "dispatch" || s.kind === "combine";
}

/** The costs and durations of a program's steps in a setup. */
class Timing {
  readonly shape: StepShape;
  readonly uncosted = new Set<string>();
  constructor(readonly setup: SimSetup, training: boolean) {
    this.shape = stepShape(setup, training);
  }
  get device(): DeviceRates {
    return this.setup.hardware.device;
  }
  cost(s: Step): StepCost {
    if (isExchange(s)) return NO_COST;
    if (!s.cost) {
      if (s.kind === "compute") this.uncosted.add(s.name);
      return NO_COST;
    }
    return s.cost(this.shape);
  }
  /** Milliseconds of a compute or route step in a pass. */
  stepMs(s: Step, phase: "fwd" | "bwd"): number {
    const c = this.cost(s);
    const f = phase === "bwd" ? this.device.backwardFactor : 1;
    const fwd = computeS(phase === "bwd" ? { ...c, hostBytes: 0 } : c, this.device, this.share);
    return 1e3 * f * fwd;
  }
  get share(): number {
    return this.setup.computeShare ?? 1;
  }
  /** Bytes a rank sends in an exchange. */
  exchangeBytes(s: ExchangeStep): number {
    return s.cost ? s.cost(this.shape).bytes : 0;
  }
  /** Milliseconds of an exchange on the communication stream. */
  exchangeMs(s: ExchangeStep): number {
    return 1e3 * alltoallS(this.setup.hardware.topology, this.setup.ep, this.exchangeBytes(s));
  }
  /** Milliseconds the compute stream spends issuing an exchange. */
  issueMs(s: ExchangeStep): number {
    const d = this.device;
    if (!d.exchangeViaHost) return 1e3 * d.kernelS / this.share;
    return 1e3 * (d.hostReadS + this.exchangeBytes(s) / d.hostBytesPerS) / this.share;
  }
}

/** A value's readiness: when, and which exchange made it (for the waits). */
interface Ready {
  t: number;
  via?: string;
}

function later(a: Ready | undefined, b: Ready): Ready {
  return !a || b.t > a.t ? b : a;
}

/** The replay of one plan on the clock. */
function replay(
  network: Network,
  plan: ScheduledProgram,
  timing: Timing,
  training: boolean,
): { ops: TimedOp[]; stepMs: number; allreduceMs: number; optimizerMs: number } {
  const ops: TimedOp[] = [];
  let tc = 0, tm = 0;
  const wait = (values: (Ready | undefined)[], phase: "fwd" | "bwd") => {
    let latest: Ready = { t: tc };
    for (const r of values) if (r && r.t > latest.t) latest = r;
    if (latest.t > tc) {
      if (latest.via) {
        ops.push({ name: latest.via, kind: "wait", phase, startMs: tc, endMs: latest.t });
      }
      tc = latest.t;
    }
  };
  const op = (name: string, phase: "fwd" | "bwd", ms: number) => {
    ops.push({ name, kind: "op", phase, startMs: tc, endMs: tc + ms });
    tc += ms;
  };
  /** Issues an exchange at `tc`; returns when its result is ready. */
  const exchange = (s: ExchangeStep, phase: "fwd" | "bwd"): Ready => {
    op(`${s.name}.send`, phase, timing.issueMs(s));
    const start = Math.max(tc, tm);
    tm = start + timing.exchangeMs(s);
    ops.push({
      name: s.name,
      kind: "comm",
      phase,
      startMs: tc,
      endMs: tm,
      bytes: timing.exchangeBytes(s) * (timing.setup.ep - 1) / timing.setup.ep,
    });
    const done = { t: tm, via: s.name };
    if (!plan.overlap) wait([done], phase);
    return done;
  };

  // Forward.
  const ready = new Map<string, Ready>();
  for (const s of plan.steps) {
    if (isExchange(s)) {
      wait([ready.get(s.input)], "fwd");
      ready.set(s.output, exchange(s, "fwd"));
      continue;
    }
    wait(s.inputs.map((v) => ready.get(v)), "fwd");
    op(s.kind === "route" ? `${s.name}.route` : s.name, "fwd", timing.stepMs(s, "fwd"));
    if (s.kind === "compute") { for (const v of s.outputs) ready.set(v, { t: tc }); }
  }
  if (!training) {
    wait([{ t: tm }], "fwd");
    return { ops, stepMs: tc, allreduceMs: 0, optimizerMs: 0 };
  }

  // Backward.
  const grads = new Map<string, Ready>([["loss", { t: tc }]]);
  const doneAt = new Map<string, number>();
  for (const s of plan.backward) {
    if (s.kind === "route") continue;
    if (isExchange(s)) {
      wait([grads.get(s.output) ?? { t: tc }], "bwd");
      grads.set(s.input, later(grads.get(s.input), exchange(s, "bwd")));
      continue;
    }
    const pending = s.outputs.map((v) => grads.get(v)).filter((g) => g !== undefined);
    if (pending.length === 0) continue;
    wait(pending, "bwd");
    op(s.name, "bwd", timing.stepMs(s, "bwd"));
    doneAt.set(s.name, tc);
    for (const v of s.inputs) grads.set(v, later(grads.get(v), { t: tc }));
  }

  // Gradient all-reduces, bucket by bucket, as soon as each bucket is complete.
  const ar = allreduces(network, plan, timing, doneAt);
  let tr = 0;
  for (const b of ar.sort((x, y) => x.readyMs - y.readyMs)) {
    const start = Math.max(b.readyMs, tr);
    tr = start + b.ms;
    ops.push({
      name: `grads.allreduce.${b.name}`,
      kind: "comm",
      phase: "bwd",
      startMs: start,
      endMs: tr,
    });
  }
  const allreduceMs = ar.reduce((a, b) => a + b.ms, 0);
  if (tr > tc) {
    ops.push({ name: "grads.allreduce", kind: "wait", phase: "bwd", startMs: tc, endMs: tr });
    tc = tr;
  }
  tc = Math.max(tc, tm);
  let optimizerMs = 0;
  if (timing.setup.optimizer) {
    optimizerMs = 1e3 * computeS(adamWCost(network, timing.setup), timing.device, timing.share);
    op("optimizer", "bwd", optimizerMs);
  }
  return { ops, stepMs: tc, allreduceMs, optimizerMs };
}

/** One rank's parameters: dense ones, and the experts it holds (`E / ep` of each layer). */
function localParams(
  network: Network,
  ep: number,
): { dense: number; experts: number; tensors: number } {
  let dense = 0, experts = 0, tensors = 0;
  for (const p of network.params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (p.expert === undefined) {
      dense += n;
      tensors++;
    } else {
      experts += n / ep;
      tensors += 1 / ep;
    }
  }
  return { dense, experts, tensors };
}

/** AdamW's update of every local parameter (`optimizer.ts`: about 15 element-wise kernels each). */
function adamWCost(network: Network, setup: SimSetup): StepCost {
  const { dense, experts, tensors } = localParams(network, setup.ep);
  return { flops: 0, bytes: 2 * 4 * 15 * (dense + experts), kernels: 15 * tensors };
}

/**
 * The gradient all-reduces of a training step: one per dense bucket over
 * all `ep * dp` ranks, and (with `dp > 1`) one per MoE layer's local experts
 * over their replicas, each with the time its last gradient is complete. A
 * parameter's gradient is complete when the backward of the last step that
 * uses it is done; the step is the one named by the longest dotted prefix of
 * the parameter's name (`blocks.0.attn` for `blocks.0.attn.wqkv`, the
 * steps under `blocks.0` for `blocks.0.ln1.g`, every step for `wte`).
 */
function allreduces(
  network: Network,
  plan: ScheduledProgram,
  timing: Timing,
  doneAt: Map<string, number>,
): { name: string; readyMs: number; ms: number }[] {
  const topology = timing.setup.allreduceTopology ?? timing.setup.hardware.topology;
  const ep = timing.setup.ep, dp = timing.setup.dp ?? 1;
  const gradBytes = timing.setup.gradBytes ?? 4;
  const steps = [...doneAt.keys()];
  const readyOf = (param: string): number => {
    const parts = param.split(".");
    for (let n = parts.length; n > 0; n--) {
      const prefix = parts.slice(0, n).join(".");
      const users = steps.filter((s) => s === prefix || s.startsWith(`${prefix}.`));
      if (users.length) return Math.max(...users.map((s) => doneAt.get(s)!));
    }
    return Math.max(0, ...doneAt.values());
  };
  const buckets = new Map<string, { readyMs: number; bytes: number; experts: boolean }>();
  const add = (name: string, readyMs: number, bytes: number, experts: boolean) => {
    const b = buckets.get(name) ?? { readyMs: 0, bytes: 0, experts };
    buckets.set(name, { readyMs: Math.max(b.readyMs, readyMs), bytes: b.bytes + bytes, experts });
  };
  for (const p of network.params) {
    const n = p.shape.reduce((a, b) => a * b, 1) * gradBytes;
    if (p.expert === undefined) add(bucketOf(p.name), readyOf(p.name), n, false);
    else if (dp > 1) {
      const layer = plan.windows.find((w) => p.name.startsWith(`${w.layer}.`))?.layer ?? "experts";
      add(`${layer}.experts`, readyOf(p.name), n / ep, true);
    }
  }
  return [...buckets].map(([name, b]) => ({
    name,
    readyMs: b.readyMs,
    ms: 1e3 *
      (b.experts ? allreduceS(topology, dp, b.bytes, ep) : allreduceS(topology, ep * dp, b.bytes)),
  }));
}

/** The modelled times of one gate's window in both passes, for the scheduler's decisions. */
function windowTimes(
  serial: Step[],
  window: GateWindow,
  timing: Timing,
): { forward: WindowTimes; backward: WindowTimes | null } {
  const byName = new Map(serial.map((s) => [s.name, s]));
  const chain = serial.filter((s) =>
    (isExchange(s) && s.route === window.gate) || s.moe?.gate === window.gate
  );
  const ms = (kind: "dispatch" | "combine") =>
    chain.filter((s): s is ExchangeStep => s.kind === kind).reduce(
      (a, s) => a + timing.exchangeMs(s),
      0,
    );
  const experts = (phase: "fwd" | "bwd") =>
    chain.filter((s) => s.moe?.role === "experts").reduce((a, s) => a + timing.stepMs(s, phase), 0);
  const backbone = (phase: "fwd" | "bwd") =>
    window.ops.map((n) => timing.stepMs(byName.get(n)!, phase));
  return {
    forward: {
      backbone: backbone("fwd"),
      dispatchMs: ms("dispatch"),
      expertMs: experts("fwd"),
      combineMs: ms("combine"),
    },
    backward: timing.shape.training
      ? {
        backbone: backbone("bwd").reverse(),
        dispatchMs: ms("combine"),
        expertMs: experts("bwd"),
        combineMs: ms("dispatch"),
      }
      : null,
  };
}

/**
 * Simulates one run of a network (a training step, or with `training:
 * false` a forward pass) on the setup, scheduled by a scheduler of
 * `schedule`'s options deciding on modelled times.
 *
 * @example
 * ```ts
 * import { simulateNetwork } from "./simulate.ts";
 * import { HARDWARE } from "./hardware.ts";
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const net = gpt(resolveConfig({ variant: "scmoe", pos: 2, nExperts: 8 }));
 * const setup = { hardware: HARDWARE["a30-pcie"], ep: 8, batch: 8, seq: 64 };
 * const pass = simulateNetwork(net, setup, {}, { training: true });
 * pass.stepMs > pass.computeMs; // the step also waits on the gradient all-reduce
 * ```
 */
export function simulateNetwork(
  network: Network,
  setup: SimSetup,
  schedule: Omit<ScheduleOptions, "log"> = {},
  opts: { training?: boolean } = {},
): SimPass {
  const training = opts.training ?? true;
  const program = network.program(training);
  const timing = new Timing(setup, training);
  // A pipeline stage's fixed cost on this hardware: an all-to-all's latency, unless given.
  const t = setup.hardware.topology;
  const latencyS =
    (setup.ep > t.ranksPerNode ? Math.max(t.intra.latencyS, t.inter.latencyS) : t.intra.latencyS) +
    t.perPeerS * (setup.ep - 1);
  schedule = { chunkOverheadMs: 1e3 * latencyS, ...schedule };
  const serial = serialOrder(program);
  const planned = (chunks?: Record<string, number>) => {
    const scheduler = new OverlapScheduler(schedule);
    const decisions = scheduler.decide(program, (w) => windowTimes(serial, w, timing), chunks);
    const plan = scheduler.plan(program);
    return { plan, decisions, run: replay(network, plan, timing, training) };
  };
  let best = planned();
  // The measured trial's stand-in: a modelled chunk count is kept only if it beats one chunk.
  const chunked = Object.entries(best.plan.chunks).filter(([, c]) => c > 1);
  if (chunked.length && typeof schedule.chunks !== "number") {
    const one = planned(Object.fromEntries(chunked.map(([g]) => [g, 1])));
    if (one.run.stepMs < best.run.stepMs) {
      one.decisions.push(
        `pipelining kept off: 1 chunk ${one.run.stepMs.toFixed(2)} ms, ` +
          `modelled chunks ${best.run.stepMs.toFixed(2)} ms`,
      );
      best = one;
    }
  }
  return figures(best.run, best.plan, best.decisions, timing);
}

function figures(
  run: ReturnType<typeof replay>,
  plan: ScheduledProgram,
  decisions: string[],
  timing: Timing,
): SimPass {
  const { ops } = run;
  const a2a = ops.filter((o) => o.kind === "comm" && !o.name.startsWith("grads."));
  const exchanges = new Set(a2a.map((o) => o.name));
  const computeMs = ops.filter((o) => o.kind === "op").reduce((a, o) => a + o.endMs - o.startMs, 0);
  const commMs = union(a2a);
  const exposedMs = ops.filter((o) => o.kind === "wait" && exchanges.has(o.name))
    .reduce((a, o) => a + o.endMs - o.startMs, 0);
  const allreduceExposedMs = ops.filter((o) => o.kind === "wait" && o.name === "grads.allreduce")
    .reduce((a, o) => a + o.endMs - o.startMs, 0);
  const modelFlops = programFlops(plan.steps, timing.shape);
  return {
    stepMs: run.stepMs,
    computeMs,
    commMs,
    exposedMs,
    hiddenMs: commMs - exposedMs,
    hiddenFraction: commMs > 0 ? clean(1 - exposedMs / commMs) : 0,
    allreduceMs: run.allreduceMs,
    allreduceExposedMs,
    optimizerMs: run.optimizerMs,
    modelFlops,
    mfu: run.stepMs > 0 ? modelFlops / (run.stepMs / 1e3) / timing.device.matmulFlopsPerS : 0,
    blocks: blockFigures(ops, plan.layout),
    ops,
    plan,
    decisions,
    uncosted: [...timing.uncosted],
  };
}

/** `x` in [0, 1] with rounding noise of sums of times taken out. */
function clean(x: number): number {
  return Math.abs(x) < 1e-9 ? 0 : Math.abs(1 - x) < 1e-9 ? 1 : Math.max(0, Math.min(1, x));
}

/** Time covered by at least one of `ops`. */
function union(ops: TimedOp[]): number {
  let total = 0, end = -Infinity;
  for (const o of [...ops].sort((a, b) => a.startMs - b.startMs)) {
    total += Math.max(0, o.endMs - Math.max(o.startMs, end));
    end = Math.max(end, o.endMs);
  }
  return total;
}

/**
 * Model FLOPs of one rank's run of `program` at `shape` from its steps' cost
 * estimates: the forward's matrix multiplies (dense and attention's), three
 * times over in training (forward and backward, recomputation not counted).
 *
 * @example
 * ```ts
 * import { programFlops } from "./simulate.ts";
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const net = gpt(resolveConfig({ variant: "top2", nLayer: 2 }));
 * const shape = { batch: 8, seq: 64, tokens: 512, ranks: 2, training: true, bytesPerElement: 4, rowsPerChoice: 1 };
 * programFlops(net.program(true), shape) > 0; // true
 * ```
 */
export function programFlops(program: Step[], shape: StepShape): number {
  let fwd = 0;
  for (const s of program) {
    if (isExchange(s) || !s.cost) continue;
    const c = s.cost(shape);
    fwd += c.flops + (c.batchedFlops ?? 0);
  }
  return (shape.training ? 3 : 1) * fwd;
}

/** A variant to simulate: a name, the model's changes and the schedule. */
export interface SimVariant {
  /** Its name in the results, e.g. `scmoe-pos2`. */
  name: string;
  /** What it changes in the model. */
  model: Partial<ModelConfig>;
  /** Its schedule's options. */
  schedule: Omit<ScheduleOptions, "log">;
}

/**
 * The variants compared, as the benchmarks compare them: top-1, the shared
 * expert, ScMoE Pos-1/2/3, DGMoE, top-2 pipelined (Tutel-style, chunks where
 * they pay) and top-2 (standard expert parallelism, no overlap: the
 * baseline of every speed-up), last.
 */
export const SIM_VARIANTS: readonly SimVariant[] = [
  { name: "top1", model: { variant: "top1" }, schedule: {} },
  { name: "se", model: { variant: "se" }, schedule: {} },
  { name: "scmoe-pos1", model: { variant: "scmoe", pos: 1 }, schedule: {} },
  { name: "scmoe-pos2", model: { variant: "scmoe", pos: 2 }, schedule: {} },
  { name: "scmoe-pos3", model: { variant: "scmoe", pos: 3 }, schedule: {} },
  { name: "dgmoe", model: { variant: "dgmoe" }, schedule: {} },
  { name: "top2-pipelined", model: { variant: "top2" }, schedule: { chunks: "auto" } },
  { name: "top2", model: { variant: "top2" }, schedule: { overlap: false } },
];

/** One variant simulated: its training step and its forward pass, and their speed-ups. */
export interface SimResult {
  /** The variant. */
  variant: string;
  /** The training step. */
  train: SimPass;
  /** The forward pass (inference). */
  infer: SimPass;
  /** top-2's training step time over this variant's. */
  trainSpeedup: number;
  /** top-2's forward time over this variant's. */
  inferSpeedup: number;
}

/**
 * The experts of a model at `ep` ranks: at least one per rank, a multiple of
 * `ep` (rank r holds `E / ep` of each layer).
 */
export function expertsAt(experts: number, ep: number): number {
  return ep * Math.ceil(Math.max(experts, ep) / ep);
}

/**
 * Every variant of `variants` (default {@linkcode SIM_VARIANTS}) on a GPT
 * of `model`'s shape, with speed-ups over the one named `top2`. The model's
 * experts become {@linkcode expertsAt} the setup's `ep`.
 *
 * @example
 * ```ts
 * import { simulateVariants } from "./simulate.ts";
 * import { HARDWARE } from "./hardware.ts";
 * const results = simulateVariants(
 *   { nLayer: 4, nEmbd: 256, nHead: 4, nExperts: 8, blockSize: 256 },
 *   { hardware: HARDWARE["a30-pcie"], ep: 8, batch: 8, seq: 256 },
 * );
 * results.find((r) => r.variant === "scmoe-pos2")!.trainSpeedup > 1; // true
 * ```
 */
export function simulateVariants(
  model: Partial<ModelConfig>,
  setup: SimSetup,
  variants: readonly SimVariant[] = SIM_VARIANTS,
): SimResult[] {
  const experts = expertsAt(model.nExperts ?? 4, setup.ep);
  const runs = variants.map((v) => {
    const cfg = resolveConfig({ ...model, ...v.model, nExperts: experts });
    const net = gpt(cfg);
    return {
      variant: v.name,
      train: simulateNetwork(net, setup, v.schedule, { training: true }),
      infer: simulateNetwork(net, setup, v.schedule, { training: false }),
    };
  });
  const base = runs.find((r) => r.variant === "top2");
  return runs.map((r) => ({
    ...r,
    trainSpeedup: base ? base.train.stepMs / r.train.stepMs : NaN,
    inferSpeedup: base ? base.infer.stepMs / r.infer.stepMs : NaN,
  }));
}

/** A model to simulate: the GPT's shape and one rank's batch. */
export interface SimModel {
  /** One line: what it is, and what is assumed. */
  summary: string;
  /** The GPT's shape (the variant is each {@linkcode SimVariant}'s). */
  config: Partial<ModelConfig>;
  /** Sequences per rank and step. */
  batch: number;
  /** Tokens per sequence. */
  seq: number;
  /** Routed choices per token for the cost (see `StepShape.routedK`). */
  routedK?: number;
}

/**
 * The models `deno task plan` and `bench simulate` know: this project's
 * size presets (`tiny`, `small`, `base`, as `deno task train --size`, with
 * one rank's share of their global batch at 2 ranks), the paper's models
 * (GPT-2-MoE and GPT-3-MoE-XL; a SwinV2-MoE-S stand-in of its stage-3 shape,
 * since the simulator replays this project's GPT program) and a
 * LongCat-Flash-like shape as far as its report publishes it.
 */
export const SIM_MODELS: Readonly<Record<string, SimModel>> = {
  tiny: {
    summary: "this project's tiny preset: d 64, 4 blocks, 4 experts, 8 x 64 tokens a rank",
    config: { nEmbd: 64, nLayer: 4, nHead: 4, nExperts: 4, blockSize: 64 },
    batch: 8,
    seq: 64,
  },
  small: {
    summary: "this project's small preset: d 128, 6 blocks, 8 experts, 8 x 128 tokens a rank",
    config: { nEmbd: 128, nLayer: 6, nHead: 4, nExperts: 8, blockSize: 128 },
    batch: 8,
    seq: 128,
  },
  base: {
    summary: "this project's base preset: d 256, 8 blocks, 8 experts, 16 x 256 tokens a rank",
    config: { nEmbd: 256, nLayer: 8, nHead: 8, nExperts: 8, blockSize: 256 },
    batch: 16,
    seq: 256,
  },
  "gpt2-moe": {
    summary: "the paper's GPT2-MoE: GPT-2 small (d 768, 12 blocks, 50257 tokens), " +
      "MoE every 2nd block, 8 experts; 8 x 1024 tokens a GPU (assumed)",
    config: { nEmbd: 768, nLayer: 12, nHead: 12, nExperts: 8, blockSize: 1024, vocabSize: 50257 },
    batch: 8,
    seq: 1024,
  },
  "swinv2-moe-s": {
    summary: "a stand-in of the paper's SwinV2-MoE-S: its stage 3 (d 384, 18 blocks, " +
      "12 heads, 12x12-token windows as sequences), 8 experts; 128 images a GPU (assumed)",
    config: { nEmbd: 384, nLayer: 18, nHead: 12, nExperts: 8, blockSize: 144, vocabSize: 1000 },
    batch: 128,
    seq: 144,
  },
  "gpt3-moe-xl": {
    summary: "the paper's GPT3-MoE-XL: d 2048, 24 blocks, 16 heads, MoE every 2nd block, " +
      "8 experts; 4 x 2048 tokens a GPU (assumed)",
    config: { nEmbd: 2048, nLayer: 24, nHead: 16, nExperts: 8, blockSize: 2048, vocabSize: 50257 },
    batch: 4,
    seq: 2048,
  },
  "longcat-flash": {
    summary: "LongCat-Flash-like (report): 28 layers as 28 block pairs, d 6144, dense FFN " +
      "12288, 512 experts of 2048, 12 routed a token, 64 heads (MLA as MHA); 1 x 8192 tokens a GPU (assumed)",
    config: {
      nEmbd: 6144,
      nLayer: 56,
      nHead: 64,
      hidden: 12288,
      expertHidden: 2048,
      nExperts: 512,
      blockSize: 8192,
      vocabSize: 131072,
    },
    batch: 1,
    seq: 8192,
    routedK: 12,
  },
};

/** The model names of {@linkcode SIM_MODELS}. */
export const SIM_MODEL_NAMES: readonly string[] = Object.keys(SIM_MODELS);

/** Expert-parallel sizes of a sweep: 2, 4, ..., 1024. */
export const EP_SWEEP: readonly number[] = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** One expert-parallel size of a sweep: every variant simulated there. */
export interface SweepPoint {
  /** Expert-parallel ranks. */
  ep: number;
  /** Every variant at that size. */
  results: SimResult[];
}

/**
 * A model on a hardware at each expert-parallel size of `eps` (default
 * {@linkcode EP_SWEEP}): what `deno task plan` tabulates and charts.
 *
 * @example
 * ```ts
 * import { HARDWARE } from "./hardware.ts";
 * import { SIM_MODELS, sweepEp } from "./simulate.ts";
 * const points = sweepEp(SIM_MODELS.tiny, HARDWARE["h100-ib"], { eps: [8, 16] });
 * points.map((p) => p.ep); // [8, 16]
 * ```
 */
export function sweepEp(
  model: SimModel,
  hardware: Hardware,
  opts: { eps?: readonly number[]; dp?: number; variants?: readonly SimVariant[] } = {},
): SweepPoint[] {
  return (opts.eps ?? EP_SWEEP).map((ep) => ({
    ep,
    results: simulateVariants(model.config, {
      hardware,
      ep,
      dp: opts.dp,
      batch: model.batch,
      seq: model.seq,
      routedK: model.routedK,
    }, opts.variants),
  }));
}
