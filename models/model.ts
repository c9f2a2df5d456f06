/**
 * The model's entry points: {@linkcode createModel}, {@linkcode trainStep},
 * {@linkcode evaluate} and {@linkcode forward}, for the GPT of a
 * {@linkcode ModelConfig} or for your own {@linkcode Network}. Without a
 * communicator the whole step is one tape on one rank holding every expert;
 * with one, the step runs as a {@linkcode SegmentedRun} on each rank of the
 * group, in the order its {@linkcode OverlapScheduler} plans.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Tensor, Variable } from "./tf.ts";
import { createMemoryGroup } from "../collectives/memory.ts";
import type { Communicator } from "../collectives/types.ts";
import { readsSynchronously } from "./backend.ts";
import { expertIndex, expertRange } from "./checkpoint.ts";
import { type ModelConfig, resolveConfig } from "./config.ts";
import { gpt } from "./gpt.ts";
import type { Batch } from "./data.ts";
import { nowMs } from "../collectives/link.ts";
import { lookupIn, runLocal, SegmentedRun } from "./execute.ts";
import { GradientBuckets } from "./grad_sync.ts";
import { gateNoise, type GateStats, routeStats } from "./gate.ts";
import { blockFigures, type OverlapReport, sumFigures, type TimedOp } from "./overlap_report.ts";
import { initialValues } from "./params.ts";
import { OverlapScheduler, serialOrder } from "./scheduler.ts";
import type { Network, RunContext, Step } from "./steps.ts";

/** Where a model replica sits in its expert-parallel group. */
export interface ModelOptions {
  /** This rank (default 0). */
  rank?: number;
  /** Ranks N in the group; E must divide by N (default 1). */
  size?: number;
  /** Seed of the parameters and the gate noise (default 0). */
  seed?: number;
}

/** The overlap schedulers of a model's kinds of run. */
export interface ModelSchedulers {
  /** Of {@linkcode trainStep}. */
  readonly train: OverlapScheduler;
  /** Of {@linkcode evaluate}. */
  readonly eval: OverlapScheduler;
  /** Of {@linkcode forward} and {@linkcode forwardRun}. */
  readonly forward: OverlapScheduler;
}

/** One rank's replica: dense parameters and its share of the experts. */
export interface Model {
  /** What the model runs: its parameters and program. */
  readonly network: Network;
  /** The GPT's resolved configuration; absent for your own network. */
  readonly config?: ModelConfig;
  /** This rank. */
  readonly rank: number;
  /** Ranks in the group. */
  readonly size: number;
  /** Seed of the parameters and the gate noise. */
  readonly seed: number;
  /** This rank's parameters by role name: every dense one and its experts (global indices). */
  readonly params: Map<string, Variable>;
  /** The global experts this rank holds in each MoE layer, `[lo, hi)` (of the first layer's E). */
  readonly experts: [number, number];
  /**
   * The overlap schedule of each kind of run, adapted from step to step:
   * used unless a run is given its own ({@linkcode RunOptions.scheduler});
   * look at `schedulers.train.gates` to see the slots, chunks and times.
   */
  readonly schedulers: ModelSchedulers;
  /** Training steps taken; keys the gate noise. Restore it when resuming. */
  step: number;
}

/**
 * Makes rank `rank`'s replica of a model: the GPT of `spec` (a partial
 * {@linkcode ModelConfig}), or your own {@linkcode Network}. Parameters are
 * a function of (seed, name) only, so every layout starts from the same
 * model.
 *
 * @example
 * ```ts
 * import { createModel } from "./model.ts";
 * import { setupBackend } from "./backend.ts";
 * await setupBackend("cpu");
 * const model = createModel({ variant: "scmoe", pos: 2 }, { rank: 1, size: 2 });
 * model.params.has("blocks.1.moe.experts.2.w1"); // true: rank 1 holds experts 2 and 3
 * ```
 */
export function createModel(
  spec: Partial<ModelConfig> | Network = {},
  opts: ModelOptions = {},
): Model {
  const config = isNetwork(spec) ? undefined : resolveConfig(spec);
  const network = isNetwork(spec) ? spec : gpt(config!);
  const { rank = 0, size = 1, seed = 0 } = opts;
  const params = new Map<string, tf.Variable>();
  let experts: [number, number] = [0, 0];
  for (const p of network.params) {
    if (p.expert !== undefined) {
      const E = p.experts ?? 0;
      if (E % size !== 0) {
        throw new RangeError(`${E} experts do not split evenly over ${size} ranks`);
      }
      const [lo, hi] = expertRange(rank, size, E);
      if (experts[1] === 0) experts = [lo, hi];
      if (p.expert < lo || p.expert >= hi) continue;
    }
    const init = tf.tensor(initialValues(p, seed), p.shape);
    params.set(p.name, tf.variable(init));
    init.dispose();
  }
  const schedulers = {
    train: new OverlapScheduler(),
    eval: new OverlapScheduler(),
    forward: new OverlapScheduler(),
  };
  return { network, config, rank, size, seed, params, experts, step: 0, schedulers };
}

function isNetwork(spec: Partial<ModelConfig> | Network): spec is Network {
  return typeof (spec as Network).program === "function";
}

/** Frees the model's parameters. */
export function disposeModel(model: Model): void {
  for (const v of model.params.values()) v.dispose();
}

/** Options of {@linkcode trainStep}, {@linkcode evaluate} and {@linkcode forward}. */
export interface RunOptions {
  /**
   * The expert-parallel group; omit it to run on one rank holding every
   * expert. All ranks must make the same calls in the same order, each with
   * its equal share of the global batch (rank r holds the r-th slice).
   */
  comm?: Communicator;
  /**
   * Split the local tokens into this many equal groups for capacity and the
   * aux loss (default 1). One process reproducing N ranks passes N.
   */
  groups?: number;
  /** Step number keying the gate noise (default `model.step`; training only). */
  step?: number;
  /**
   * The overlap schedule of the expert-parallel run (with `comm` only): its
   * options (overlap on or off, the slot of the expert computation,
   * pipelining chunks) and its adaptive state (profiles, decisions). Keep
   * one per kind of run and pass it to every run of that kind. Default: the
   * model's own, `model.schedulers`.
   */
  scheduler?: OverlapScheduler;
  /** Keep every timed op in the overlap report (for `trace.ts` and timelines). */
  trace?: boolean;
  /**
   * The group that sums the dense gradients (training, with `comm` only;
   * default `comm`): the same ranks, over another link where the
   * data-parallel traffic should not share the expert-parallel one's.
   */
  gradComm?: Communicator;
}

/** What a loss-computing run reports. Losses are means over the global batch. */
export interface LossResult {
  /** `lmLoss + auxLossWeight * auxLoss`. */
  loss: number;
  /** Next-token cross-entropy. */
  lmLoss: number;
  /** Load-balancing loss, averaged over gate applications (0 for dense). */
  auxLoss: number;
  /** Per gate application, summed over the group. */
  stats: GateStats[];
  /** Dropped / all assignments over every gate application. */
  dropRate: number;
  /** This rank's measured overlap (expert-parallel runs only). */
  overlap?: OverlapReport;
}

/** {@linkcode trainStep}'s result. */
export interface StepResult extends LossResult {
  /**
   * Gradients of the global mean loss for every parameter of this rank, by
   * name: dense ones all-reduced (identical on every rank), experts' held by
   * their owner only. The caller disposes them.
   */
  grads: Map<string, Tensor>;
}

/**
 * One training step on this rank's micro-batch (`[rows, T + 1]` windows):
 * forward, backward, dense-gradient all-reduce. Noise on, training capacity.
 * Increments `model.step`.
 *
 * @example
 * ```ts
 * import { createModel, trainStep } from "./model.ts";
 * import { setupBackend } from "./backend.ts";
 * await setupBackend("cpu");
 * const model = createModel({ nLayer: 2, blockSize: 8 });
 * const tokens = new Int32Array(2 * 9).map((_, i) => i % 256);
 * const { loss, grads } = await trainStep(model, { tokens, rows: 2, cols: 9 });
 * ```
 */
export async function trainStep(
  model: Model,
  batch: Batch,
  opts: RunOptions = {},
): Promise<StepResult> {
  const step = opts.step ?? model.step;
  const ctx = runContext(model, windows(batch), { training: true, groups: opts.groups, step });
  const program = model.network.program(true);
  const comm = groupOf(opts);
  let parts: number[];
  let grads: Map<string, tf.Tensor>;
  let overlap: OverlapReport | undefined;
  if (!comm) {
    const names = [...model.params.keys()];
    const vars = names.map((n) => model.params.get(n)!);
    parts = [];
    const { value, grads: gs } = tf.engine().gradients(
      () => {
        const values = runLocal(serialOrder(program), ctx, lookupIn(model.params));
        parts = LOSS_VALUES.map((n) => values.get(n)!.dataSync()[0]);
        return values.get("loss")!;
      },
      vars,
      undefined,
      true,
    );
    value.dispose();
    grads = new Map(names.map((n, j) => [n, gs[j] ?? tf.zerosLike(vars[j])]));
  } else {
    const t0 = nowMs();
    const scheduled = scheduledRun(model, "train", program, ctx, comm, opts);
    const { run, record } = scheduled;
    // Each rank back-propagated 1/N of the mean loss: the dense gradients are summed
    // over the group, bucket by bucket, while the backward goes on.
    const dense = [...model.params.keys()].filter((n) => expertIndex(n) === null);
    const buckets = new GradientBuckets(
      dense,
      opts.gradComm ?? comm,
      runTag("grads"),
      record,
    );
    try {
      await run.forward();
      parts = await lossValues(run);
      const used = await run.backward(1 / comm.size, (n, g) => buckets.ready(n, g));
      grads = new Map([...model.params].map(([n, v]) => [n, used.get(n) ?? tf.zerosLike(v)]));
    } finally {
      await run.dispose();
    }
    await buckets.finish(grads);
    overlap = await scheduled.report(nowMs() - t0);
  }
  model.step = step + 1;
  return { ...(await lossResult(ctx, parts, comm)), grads, overlap };
}

/** The loss of this rank's micro-batch in evaluation mode (no noise, evaluation capacity). */
export async function evaluate(
  model: Model,
  batch: Batch,
  opts: RunOptions = {},
): Promise<LossResult> {
  const ctx = runContext(model, windows(batch), { training: false, groups: opts.groups });
  const comm = groupOf(opts);
  const { values, overlap } = await evalValues(model, "eval", ctx, comm, LOSS_VALUES, opts);
  const parts = await Promise.all(values.map(async (t) => (await t.data())[0]));
  tf.dispose(values);
  return { ...(await lossResult(ctx, parts, comm)), overlap };
}

/** Tokens to run {@linkcode forward} on. */
export interface ForwardInput {
  /** Token ids [B, T], row-major; T at most `blockSize`. */
  tokens: Int32Array;
  /** B. */
  batchSize: number;
  /** T. */
  seqLen: number;
}

/**
 * Logits [B, T, V] of this rank's tokens in evaluation mode, through the same
 * expert-parallel path (every rank of `comm` must call it). The caller
 * disposes the logits.
 */
export async function forward(
  model: Model,
  input: ForwardInput,
  opts: RunOptions = {},
): Promise<Tensor> {
  return (await forwardRun(model, input, opts)).logits;
}

/**
 * {@linkcode forward} with this rank's overlap report (inference and
 * generation use the same scheduler as training).
 *
 * @example
 * ```ts
 * import { createModel, forwardRun } from "./model.ts";
 * import { createMemoryGroup } from "../collectives/memory.ts";
 * import { setupBackend } from "./backend.ts";
 * await setupBackend("cpu");
 * const [comm] = createMemoryGroup(1);
 * const model = createModel({ nLayer: 2, blockSize: 8 });
 * const tokens = new Int32Array(8).map((_, i) => i);
 * const { logits, overlap } = await forwardRun(model, { tokens, batchSize: 1, seqLen: 8 }, { comm });
 * overlap?.blocks.length; // 1
 * ```
 */
export async function forwardRun(
  model: Model,
  input: ForwardInput,
  opts: RunOptions = {},
): Promise<{ logits: Tensor; overlap?: OverlapReport }> {
  const ctx = runContext(model, input, { training: false, groups: opts.groups });
  const { values: [logits], overlap } = await evalValues(
    model,
    "forward",
    ctx,
    groupOf(opts),
    ["logits"],
    opts,
  );
  return { logits, overlap };
}

/**
 * The group to run on: the caller's, none (one tape, synchronous reads of the
 * routing scores), or a one-rank group where the backend cannot read
 * synchronously (the segmented path reads asynchronously).
 */
function groupOf(opts: RunOptions): Communicator | undefined {
  return opts.comm ?? (readsSynchronously() ? undefined : createMemoryGroup(1)[0]);
}

const LOSS_VALUES = ["loss", "lm_loss", "aux_loss"];

async function lossValues(run: SegmentedRun): Promise<number[]> {
  return await Promise.all(LOSS_VALUES.map(async (n) => (await (await run.value(n)).data())[0]));
}

/** The named values of a forward-only pass, locally or segmented; the caller disposes them. */
async function evalValues(
  model: Model,
  kind: "eval" | "forward",
  ctx: RunContext,
  comm: Communicator | undefined,
  names: string[],
  opts: RunOptions,
): Promise<{ values: tf.Tensor[]; overlap?: OverlapReport }> {
  const program = model.network.program(kind === "eval");
  if (!comm) {
    const values = tf.tidy(() => {
      const all = runLocal(serialOrder(program), ctx, lookupIn(model.params));
      return names.map((n) => all.get(n)!);
    });
    return { values };
  }
  const t0 = nowMs();
  const scheduled = scheduledRun(model, kind, program, ctx, comm, opts);
  let values: tf.Tensor[];
  try {
    await scheduled.run.forward();
    values = await Promise.all(names.map(async (n) => (await scheduled.run.value(n)).clone()));
  } finally {
    await scheduled.run.dispose();
  }
  return { values, overlap: await scheduled.report(nowMs() - t0) };
}

/**
 * A segmented run of `program` in this step's schedule, timing every op;
 * `report` (call it once the run is over, on every rank) learns from the
 * times and returns the overlap report.
 */
function scheduledRun(
  model: Model,
  kind: "train" | "eval" | "forward",
  program: Step[],
  ctx: RunContext,
  comm: Communicator,
  opts: RunOptions,
) {
  const scheduler = opts.scheduler ?? model.schedulers[kind === "train" ? "train" : kind];
  const planned = scheduler.plan(program);
  const record: TimedOp[] = [];
  const run = new SegmentedRun(planned.steps, ctx, model.params, comm, runTag(kind), {
    overlap: scheduler.overlap,
    record,
    backward: planned.backward,
  });
  const report = async (stepMs: number): Promise<OverlapReport> => {
    const blocks = blockFigures(record, planned.layout);
    const decisions = await scheduler.observe(record, blocks, comm, runTag("plan"));
    return {
      ...sumFigures(blocks),
      blocks,
      slots: planned.slots,
      backwardSlots: planned.backwardSlots,
      chunks: planned.chunks,
      decisions,
      stepMs,
      ops: opts.trace ? record : undefined,
      layout: opts.trace ? planned.layout : undefined,
    };
  };
  return { run, record, report };
}

/** Splits `[rows, T + 1]` windows into inputs and next-token targets, [rows, T] each. */
function windows(batch: Batch): ForwardInput & { targets: Int32Array } {
  const { rows, cols } = batch;
  const T = cols - 1;
  const tokens = new Int32Array(rows * T);
  const targets = new Int32Array(rows * T);
  for (let r = 0; r < rows; r++) {
    tokens.set(batch.tokens.subarray(r * cols, r * cols + T), r * T);
    targets.set(batch.tokens.subarray(r * cols + 1, (r + 1) * cols), r * T);
  }
  return { tokens, targets, batchSize: rows, seqLen: T };
}

function runContext(
  model: Model,
  input: ForwardInput & { targets?: Int32Array },
  mode: { training: boolean; groups?: number; step?: number },
): RunContext {
  const noise = new Map<string, Float32Array>();
  return {
    ...input,
    training: mode.training,
    groups: mode.groups ?? 1,
    rank: model.rank,
    size: model.size,
    routes: new Map(),
    layouts: new Map(),
    noise: (gate, tokens, experts) => {
      if (!mode.training) return null;
      if (!noise.has(gate)) {
        const offset = model.rank * tokens;
        noise.set(gate, gateNoise(model.seed, mode.step ?? 0, gate, offset, tokens, experts));
      }
      return noise.get(gate)!;
    },
  };
}

/**
 * A collective tag stem, equal on every rank that makes the same calls. It is
 * the same for every run of a kind: the communicator numbers the uses of a
 * tag, so its table of tags stays as small as the program (a stem per run
 * would grow it by every step's tags, forever).
 */
function runTag(what: string): string {
  return `model/${what}`;
}

/** Loss values and gate statistics, reduced over the group when there is one. */
async function lossResult(
  ctx: RunContext,
  parts: number[],
  comm: Communicator | undefined,
): Promise<LossResult> {
  let stats = [...ctx.routes].map(([name, r]) => routeStats(name, r));
  let [loss, lmLoss, auxLoss] = parts;
  if (comm) {
    const flat = new Float32Array([
      ...parts.map((x) => x / comm.size),
      ...stats.flatMap((s) => [...s.load, ...s.demand, s.dropped, s.assignments]),
    ]);
    const sum = await comm.allreduce(flat, "sum", { tag: runTag("stats") });
    [loss, lmLoss, auxLoss] = sum.subarray(0, 3);
    let o = 3;
    stats = stats.map((s) => {
      const [load, demand, dropped, assignments] = [s.load.length, s.demand.length, 1, 1].map((
        n,
      ) => sum.subarray(o, o += n));
      return {
        name: s.name,
        load: Array.from(load),
        demand: Array.from(demand),
        dropped: dropped[0],
        assignments: assignments[0],
      };
    });
  }
  const dropped = stats.reduce((a, s) => a + s.dropped, 0);
  const all = stats.reduce((a, s) => a + s.assignments, 0);
  return { loss, lmLoss, auxLoss, stats, dropRate: all ? dropped / all : 0 };
}
