/**
 * One expert-parallel rank as an actor: it holds a replica of the dense
 * parameters, its share of the experts, the AdamW state of both, and its
 * shard of every batch. The driver (`RankGroup`, used by `train`
 * and `generate`) makes N of them, forms a collective group, and calls the same method on
 * every rank at once; every rank then makes the same collective calls in the
 * same order. Arguments and results are plain data (numbers, typed arrays).
 *
 * ```ts
 * import { createGroup, get, init, remote, shutdown } from "../mod.ts";
 * import type { RankActor } from "./rank_actor.ts";
 * await init({ cluster: "local" });
 * const Rank = remote<typeof RankActor>(new URL("./rank_actor.ts", import.meta.url), "RankActor");
 * const base = { model: {}, size: 2, seed: 1, backend: "wasm" as const, groupId: "g",
 *   data: { seq: 64, batch: 16 }, optimizer: { lr: 3e-3, warmup: 10, total: 200 } };
 * const ranks = await Promise.all([0, 1].map((rank) => Rank.remote({ ...base, rank })));
 * createGroup(ranks, { groupId: "g" });
 * await get(ranks.map((r) => r.setup()));
 * const [m0] = await get(ranks.map((r) => r.trainStep(0)));
 * await shutdown();
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { actorContext, joinGroup } from "../actors/mod.ts";
import type { GroupCommunicator } from "../actors/groups.ts";
import { type BackendName, setupBackend } from "../models/backend.ts";
import { measureMatmulRate } from "../models/device_rates.ts";
import { expertIndex, type HostTensor } from "../models/checkpoint.ts";
import type { GateStats } from "../models/gate.ts";
import type { ModelConfig } from "../models/config.ts";
import {
  createModel,
  disposeModel,
  evaluate,
  forward,
  type Model,
  trainStep,
} from "../models/model.ts";
import { type StepOverlap, stepOverlap } from "../models/overlap_metrics.ts";
import { AdamW, clipScale, localGradSquares, warmupCosine } from "../models/optimizer.ts";
import { type DataSpec, type DataSplits, openData } from "./data_source.ts";

/** Everything a rank needs to build itself; plain data. */
export interface RankConfig {
  /** The model (filled by `resolveConfig`). */
  model: Partial<ModelConfig>;
  /** This rank, 0-based. */
  rank: number;
  /** Ranks in the group, N. */
  size: number;
  /** Seed of parameters, gate noise and data order. */
  seed: number;
  /** tfjs backend. */
  backend: BackendName;
  /** webgpu: accept a software adapter (`setupBackend`'s `allowSoftwareAdapter`). */
  allowSoftwareWebgpu?: boolean;
  /** Collective group the driver made with `createGroup`. */
  groupId: string;
  /**
   * Batches: sequence length T, the global batch B (all ranks together) and
   * the source every rank opens (default the Brown corpus).
   */
  data: { seq: number; batch: number; source?: DataSpec };
  /** AdamW with a warm-up + cosine schedule and global-norm clipping. */
  optimizer: {
    /** Peak learning rate. */
    lr: number;
    /** Warm-up steps. */
    warmup: number;
    /** Steps of the whole schedule. */
    total: number;
    /** Largest global gradient norm (default 1). */
    clip?: number;
    /** Decoupled weight decay (default 0.1). */
    weightDecay?: number;
  };
  /**
   * Capacity groups per rank (default 1). A 1-rank run that must match an
   * N-rank run gate for gate passes N (see `RunOptions.groups`).
   */
  groups?: number;
  /**
   * Test-only fault injection: at these 0-based steps rank 0 poisons one of
   * its gradients with NaN (to exercise the skipping of non-finite steps).
   */
  nanGradSteps?: number[];
}

/** What one training step reports; losses are means over the global batch. */
export interface StepMetrics {
  /** `lmLoss + auxLossWeight * auxLoss`. */
  loss: number;
  /** Next-token cross-entropy. */
  lmLoss: number;
  /** Load-balancing loss. */
  auxLoss: number;
  /** Share of expert assignments dropped past capacity. */
  dropRate: number;
  /** Each gate application's loads, demand and drops, summed over the group. */
  gates: GateStats[];
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate of this update. */
  lr: number;
  /** Tokens this rank trained on (its micro-batch). */
  tokens: number;
  /** Milliseconds of this rank's forward, backward and update. */
  computeMs: number;
  /**
   * True when the loss or a gradient on some rank was NaN or infinite: the
   * step was skipped on every rank (no update, optimizer state untouched).
   */
  skipped: boolean;
  /** This rank's MoE-block overlap (expert-parallel runs); its timed ops when traced. */
  overlap?: StepOverlap;
}

/** A rank's tensors for a checkpoint: host arrays by role name, experts by global index. */
export interface ShardData {
  /** Parameters: the dense ones from rank 0 only, plus this rank's experts. */
  params: Record<string, HostTensor>;
  /** AdamW moments of the same parameters (`<param>.adam_m` / `.adam_v`). */
  moments: Record<string, HostTensor>;
  /** AdamW updates taken. */
  optimizerStep: number;
}

/** What {@linkcode RankActor.memory} reports, in bytes (tensors: a count). */
export interface RankMemory {
  /** Resident set size of the rank's process. */
  rss: number;
  /** JS heap in use by the rank's isolate. */
  heapUsed: number;
  /** Live tfjs tensors. */
  numTensors: number;
  /** Bytes held by live tfjs tensors. */
  tensorBytes: number;
}

/** A rank of expert-parallel training and inference, run as an actor. */
export class RankActor {
  readonly #cfg: RankConfig;
  #comm: GroupCommunicator | undefined;
  #model: Model | undefined;
  #opt: AdamW | undefined;
  #data: Promise<DataSplits> | undefined;

  /** Keeps the config; {@linkcode RankActor.setup} does the work. */
  constructor(config: RankConfig) {
    this.#cfg = config;
  }

  /**
   * Starts the backend, joins the group (when N > 1), builds the model and
   * the optimizer (the data opens on first use). Called again (after a peer died), it
   * drops the model, optimizer and communicator and builds them afresh in
   * group `groupId`, which the driver made anew for the restarted ranks.
   *
   * @returns this rank's parameter count (dense + its experts).
   */
  async setup(groupId: string = this.#cfg.groupId): Promise<number> {
    const { backend, model, rank, size, seed, optimizer } = this.#cfg;
    this.#release();
    await setupBackend(backend, { allowSoftwareAdapter: this.#cfg.allowSoftwareWebgpu });
    if (size > 1) this.#comm = await joinGroup(groupId);
    this.#model = createModel(model, { rank, size, seed });
    this.#opt = new AdamW(this.#model.params, {
      lr: warmupCosine({ peak: optimizer.lr, warmup: optimizer.warmup, total: optimizer.total }),
      weightDecay: optimizer.weightDecay,
    });
    return [...this.#model.params.values()].reduce((n, p) => n + p.size, 0);
  }

  /** This rank's backend's matrix-multiply rate, FLOP/s (`measureMatmulRate`), about `seconds` of timing. */
  matmulRate(seconds = 0.3): number {
    return measureMatmulRate(seconds);
  }

  /** How many times the runtime restarted this actor (0 for the first incarnation). */
  incarnation(): number {
    return actorContext().incarnation;
  }

  /** Frames this rank's communicator dropped as malformed or foreign (0 without a group). */
  async droppedFrames(): Promise<number> {
    return this.#comm ? (await this.#comm.stats()).droppedFrames : 0;
  }

  /**
   * Memory of this rank now: the resident set of its process (shared with
   * the driver and the other ranks on a local cluster, where ranks are
   * Workers), its own JS heap, and tfjs's live tensors and their bytes.
   */
  memory(): RankMemory {
    const { rss, heapUsed } = Deno.memoryUsage();
    const { numTensors, numBytes } = tf.memory();
    return { rss, heapUsed, numTensors, tensorBytes: numBytes };
  }

  /**
   * Trains on this rank's share of global batch `step` (0-based; it also
   * keys the gate noise): forward, backward, dense all-reduce, global-norm
   * clipping across ranks, AdamW update. When the loss or a gradient is NaN
   * or infinite on any rank, every rank skips the update (the decision is
   * summed over the group, so all ranks agree) and reports `skipped`.
   * With `trace`, its overlap keeps every timed op of the step.
   */
  async trainStep(step: number, opts: { trace?: boolean } = {}): Promise<StepMetrics> {
    const model = this.#ready();
    const t0 = performance.now();
    const batch = (await this.#splits()).train.batch(step, this.#shard());
    const result = await trainStep(model, batch, {
      comm: this.#comm,
      step,
      groups: this.#cfg.groups,
      trace: opts.trace,
    });
    try {
      if (this.#cfg.rank === 0 && this.#cfg.nanGradSteps?.includes(step)) poison(result.grads);
      const { dense, expert } = localGradSquares(result.grads);
      const bad = Number.isFinite(result.loss) && Number.isFinite(dense) ? 0 : 1;
      const [expertSq, badRanks] = await this.#sum([expert, bad], `train/${step}/expert-sq`);
      const gradNorm = Math.sqrt(dense + expertSq);
      const skipped = badRanks > 0 || !Number.isFinite(gradNorm);
      const lr = skipped ? NaN : this.#opt!.update(
        result.grads,
        clipScale(gradNorm, this.#cfg.optimizer.clip ?? 1),
      );
      return {
        loss: result.loss,
        lmLoss: result.lmLoss,
        auxLoss: result.auxLoss,
        dropRate: result.dropRate,
        gates: result.stats,
        gradNorm,
        lr,
        tokens: batch.rows * (batch.cols - 1),
        computeMs: performance.now() - t0,
        skipped,
        ...(result.overlap ? { overlap: stepOverlap(result.overlap, opts.trace ?? false) } : {}),
      };
    } finally {
      tf.dispose([...result.grads.values()]);
    }
  }

  /**
   * Validation loss (next-token cross-entropy, no noise, evaluation
   * capacity): the mean over the first `numBatches` global batches of the
   * validation split, in corpus order.
   */
  async evaluate(numBatches: number): Promise<number> {
    return (await this.evaluateSplit(numBatches, "val")).loss;
  }

  /**
   * {@linkcode RankActor.evaluate} on the validation split or on the
   * held-out text (a source with `heldoutCategories`), with every gate
   * application's loads, demand and drops at evaluation capacity, summed
   * over the batches and the group.
   *
   * @throws {Error} `heldout` of a source without held-out text.
   */
  async evaluateSplit(
    numBatches: number,
    split: "val" | "heldout",
  ): Promise<{ loss: number; gates: GateStats[] }> {
    const model = this.#ready();
    const sampler = (await this.#splits())[split];
    if (!sampler) throw new Error(`the data source has no ${split} split`);
    let sum = 0;
    const gates = new Map<string, GateStats>();
    for (let i = 0; i < numBatches; i++) {
      const batch = sampler.batch(i, this.#shard());
      const r = await evaluate(model, batch, { comm: this.#comm, groups: this.#cfg.groups });
      sum += r.lmLoss;
      for (const g of r.stats) {
        const acc = gates.get(g.name);
        if (!acc) gates.set(g.name, { ...g, load: [...g.load], demand: [...g.demand] });
        else {
          g.load.forEach((n, e) => acc.load[e] += n);
          g.demand.forEach((n, e) => acc.demand[e] += n);
          acc.dropped += g.dropped;
          acc.assignments += g.assignments;
        }
      }
    }
    return { loss: sum / numBatches, gates: [...gates.values()] };
  }

  /** Copies out this rank's share of a checkpoint (see {@linkcode ShardData}). */
  exportShard(): ShardData {
    const model = this.#ready();
    const state = this.#opt!.exportState();
    const mine = (name: string) => model.rank === 0 || expertIndex(name) !== null;
    const params: Record<string, HostTensor> = {};
    for (const [name, p] of model.params) {
      if (mine(name)) params[name] = { shape: [...p.shape], data: p.dataSync() as Float32Array };
    }
    const moments: Record<string, HostTensor> = {};
    for (const [name, t] of state.tensors) if (mine(name)) moments[name] = t;
    return { params, moments, optimizerStep: state.step };
  }

  /**
   * Loads parameters and optimizer state: every dense tensor and exactly this
   * rank's experts (the driver picks them, so a checkpoint of any rank count
   * loads), and the step that keys gate noise.
   *
   * @throws {Error} naming the first missing or misshapen tensor.
   */
  importShard(shard: ShardData, step: number): void {
    const model = this.#ready();
    for (const [name, p] of model.params) {
      const t = shard.params[name];
      if (t === undefined) throw new Error(`checkpoint lacks ${name}`);
      if (!tf.util.arraysEqual(t.shape, p.shape)) {
        throw new Error(`checkpoint ${name} has shape [${t.shape}], model [${p.shape}]`);
      }
      tf.tidy(() => p.assign(tf.tensor(t.data as Float32Array, t.shape, "float32")));
    }
    this.#opt!.importState({
      step: shard.optimizerStep,
      tensors: new Map(Object.entries(shard.moments)),
    });
    model.step = step;
  }

  /**
   * Next-token logits after the last position of each row of `tokens`
   * (`[rows, seqLen]`, row-major; every rank passes the same number of
   * rows), through the expert-parallel forward path.
   *
   * @returns `[rows, vocab]` logits, row-major.
   */
  async nextLogits(tokens: Int32Array, rows: number, seqLen: number): Promise<Float32Array> {
    const model = this.#ready();
    const logits = await forward(model, { tokens, batchSize: rows, seqLen }, {
      comm: this.#comm,
      groups: this.#cfg.groups,
    });
    const last = tf.tidy(() => logits.slice([0, seqLen - 1, 0], [rows, 1, -1]).reshape([rows, -1]));
    logits.dispose();
    const data = (await last.data()) as Float32Array;
    last.dispose();
    return data;
  }

  /** Frees the model, optimizer state and communicator of a previous `setup`. */
  #release(): void {
    if (this.#model) disposeModel(this.#model);
    this.#opt?.dispose();
    this.#comm?.close().catch(() => {});
    this.#model = this.#opt = this.#comm = undefined;
  }

  #ready(): Model {
    if (!this.#model) throw new Error("RankActor: call setup() first");
    return this.#model;
  }

  /** The data, opened on first use (generation never reads it). */
  #splits(): Promise<DataSplits> {
    const { data, seed } = this.#cfg;
    this.#data ??= openData(data.source ?? { kind: "brown" }, { seed, seq: data.seq });
    return this.#data;
  }

  #shard() {
    return { batch: this.#cfg.data.batch, rank: this.#cfg.rank, size: this.#cfg.size };
  }

  /** Sums numbers over the group (themselves without one), in float32. */
  async #sum(xs: number[], tag: string): Promise<number[]> {
    if (!this.#comm) return xs;
    return [...await this.#comm.allreduce(new Float32Array(xs), "sum", { tag })];
  }
}

/** Test-only fault: turns the first gradient into NaNs, in place of the original. */
function poison(grads: Map<string, tf.Tensor>): void {
  const [name, grad] = grads.entries().next().value!;
  grads.set(name, tf.mul(grad, NaN));
  grad.dispose();
}
