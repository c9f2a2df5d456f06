/**
 * One expert-parallel rank as an actor: it holds a replica of the dense
 * parameters, its share of the experts, the AdamW state of both, and its
 * shard of every batch. The driver (`bench/train.ts`, `bench/generate.ts`)
 * makes N of them, forms a collective group, and calls the same method on
 * every rank at once; every rank then makes the same collective calls in the
 * same order. Arguments and results are plain data (numbers, typed arrays).
 *
 * ```ts
 * import { createGroup, get, init, remote, shutdown } from "../actors/mod.ts";
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
import { joinGroup } from "../actors/mod.ts";
import type { Communicator } from "../collectives/types.ts";
import { type BackendName, setupBackend } from "./backend.ts";
import { expertIndex, type HostTensor } from "./checkpoint.ts";
import type { ModelConfig } from "./config.ts";
import { brownData, type WindowSampler } from "./data.ts";
import { createModel, evaluate, forward, type Model, trainStep } from "./model.ts";
import { AdamW, clipScale, localGradSquares, warmupCosine } from "./optimizer.ts";

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
  /** Collective group the driver made with `createGroup`. */
  groupId: string;
  /** Batches: sequence length T and the global batch B (all ranks together). */
  data: { seq: number; batch: number };
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
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Learning rate of this update. */
  lr: number;
  /** Tokens this rank trained on (its micro-batch). */
  tokens: number;
  /** Milliseconds of this rank's forward, backward and update. */
  computeMs: number;
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

/** A rank of expert-parallel training and inference, run as an actor. */
export class RankActor {
  readonly #cfg: RankConfig;
  #comm: Communicator | undefined;
  #model: Model | undefined;
  #opt: AdamW | undefined;
  #train: WindowSampler | undefined;
  #val: WindowSampler | undefined;

  /** Keeps the config; {@linkcode RankActor.setup} does the work. */
  constructor(config: RankConfig) {
    this.#cfg = config;
  }

  /**
   * Starts the backend, joins the group (when N > 1), builds the model, the
   * data samplers and the optimizer.
   *
   * @returns this rank's parameter count (dense + its experts).
   */
  async setup(): Promise<number> {
    const { backend, groupId, model, rank, size, seed, data, optimizer } = this.#cfg;
    await setupBackend(backend);
    if (size > 1) this.#comm = await joinGroup(groupId);
    this.#model = createModel(model, { rank, size, seed });
    ({ train: this.#train, val: this.#val } = await brownData({ seed, seq: data.seq }));
    this.#opt = new AdamW(this.#model.params, {
      lr: warmupCosine({ peak: optimizer.lr, warmup: optimizer.warmup, total: optimizer.total }),
      weightDecay: optimizer.weightDecay,
    });
    return [...this.#model.params.values()].reduce((n, p) => n + p.size, 0);
  }

  /**
   * Trains on this rank's share of global batch `step` (0-based; it also
   * keys the gate noise): forward, backward, dense all-reduce, global-norm
   * clipping across ranks, AdamW update.
   */
  async trainStep(step: number): Promise<StepMetrics> {
    const model = this.#ready();
    const t0 = performance.now();
    const batch = this.#train!.batch(step, this.#shard());
    const result = await trainStep(model, batch, {
      comm: this.#comm,
      step,
      groups: this.#cfg.groups,
    });
    try {
      const { dense, expert } = localGradSquares(result.grads);
      const gradNorm = Math.sqrt(dense + (await this.#sum(expert, `train/${step}/expert-sq`)));
      const lr = this.#opt!.update(
        result.grads,
        clipScale(gradNorm, this.#cfg.optimizer.clip ?? 1),
      );
      return {
        loss: result.loss,
        lmLoss: result.lmLoss,
        auxLoss: result.auxLoss,
        dropRate: result.dropRate,
        gradNorm,
        lr,
        tokens: batch.rows * (batch.cols - 1),
        computeMs: performance.now() - t0,
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
    const model = this.#ready();
    let sum = 0;
    for (let i = 0; i < numBatches; i++) {
      const batch = this.#val!.batch(i, this.#shard());
      sum += (await evaluate(model, batch, { comm: this.#comm, groups: this.#cfg.groups })).lmLoss;
    }
    return sum / numBatches;
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

  #ready(): Model {
    if (!this.#model) throw new Error("RankActor: call setup() first");
    return this.#model;
  }

  #shard() {
    return { batch: this.#cfg.data.batch, rank: this.#cfg.rank, size: this.#cfg.size };
  }

  /** Sums a number over the group (itself without one), in float32. */
  async #sum(x: number, tag: string): Promise<number> {
    if (!this.#comm) return x;
    return (await this.#comm.allreduce(new Float32Array([x]), "sum", { tag }))[0];
  }
}
