/**
 * A saved run back on N rank actors: reads a checkpoint (a run directory's
 * latest valid one, or one `ckpt-NNNNNN` directory), starts N ranks with its
 * model (experts re-sharded for N, whatever N it was trained on), loads it,
 * and hands the group to a callback. `generate` and
 * {@linkcode evaluateCheckpoint} are built on it.
 *
 * @example
 * ```ts ignore
 * import { evaluateCheckpoint } from "../mod.ts";
 * const loss = await evaluateCheckpoint({ checkpoint: "runs/mine", ranks: 1 });
 * ```
 *
 * @module
 */
import { init, isInitialized, shutdown } from "../actors/mod.ts";
import { type BackendName, BACKENDS, checkBackend } from "../models/backend.ts";
import {
  type CheckpointContents,
  CheckpointError,
  loadCheckpoint,
  loadLatestValid,
} from "../models/checkpoint.ts";
import { type ModelConfig, resolveConfig } from "../models/config.ts";
import { type Cluster, ConfigError } from "./config.ts";
import type { DataSpec } from "./data_source.ts";
import { RankGroup } from "./rank_group.ts";
import { VAL_BATCHES } from "./train.ts";

/** Which checkpoint, on how many ranks, where. */
export interface CheckpointGroupOptions {
  /** A run directory (its latest valid checkpoint) or one `ckpt-NNNNNN` directory. */
  checkpoint: string;
  /** Rank actors (default 2); must divide the checkpoint's experts. */
  ranks?: number;
  /** Where ranks run (default `local`; ignored when the runtime is already started). */
  cluster?: Cluster;
  /** tfjs backend (default `wasm`). */
  backend?: BackendName;
  /** With the `webgpu` backend: run on a software adapter when there is no GPU (default false). */
  allowSoftwareWebgpu?: boolean;
}

/** What a checkpoint says of the run that wrote it. */
export interface SavedRun {
  /** The checkpoint read. */
  contents: CheckpointContents;
  /** Its model. */
  model: ModelConfig;
  /** The run settings saved beside the model (`seq`, `batch`, `data`, ...), when present. */
  settings: { seq?: number; batch?: number; ranks?: number; data?: DataSpec };
}

/** What the ranks read: window length, global batch, source, and capacity groups per rank. */
export interface RankData {
  /** Sequence length (default the model's context). */
  seq?: number;
  /** Global batch (default one row per rank). */
  batch?: number;
  /** The data (default the Brown corpus; opened only when read). */
  source?: DataSpec;
  /** Capacity groups per rank (see `RankConfig.groups`; default 1). */
  groups?: number;
}

/** Reads a run directory's latest valid checkpoint, or one checkpoint directory. */
export async function readSavedRun(dir: string): Promise<SavedRun> {
  const isOne = await Deno.stat(`${dir}/manifest.json`).then(() => true, () => false);
  let contents: CheckpointContents;
  if (isOne) contents = await loadCheckpoint(dir);
  else {
    const found = await loadLatestValid(dir);
    if (found === null) throw new CheckpointError(`no checkpoint in ${dir}`);
    contents = found.contents;
  }
  const config = contents.config as {
    model?: Partial<ModelConfig>;
    train?: SavedRun["settings"];
  };
  return { contents, model: resolveConfig(config.model), settings: config.train ?? {} };
}

/**
 * Starts `ranks` rank actors with the checkpoint loaded and runs `fn` on
 * them. Starts the actor runtime when none is running (and stops it after);
 * otherwise uses it and kills the ranks after.
 *
 * @throws {CheckpointError} when the checkpoint is missing or damaged.
 * @throws {ConfigError} for a bad option (nothing started).
 */
export async function withCheckpointGroup<T>(
  options: CheckpointGroupOptions,
  dataOf: (saved: SavedRun) => RankData,
  fn: (group: RankGroup, saved: SavedRun) => Promise<T>,
): Promise<T> {
  const ranks = options.ranks ?? 2;
  const backend = options.backend ?? "wasm";
  if (!(Number.isSafeInteger(ranks) && ranks > 0)) {
    throw new ConfigError(`ranks must be a positive integer (got ${JSON.stringify(ranks)})`);
  }
  if (!BACKENDS.includes(backend)) {
    throw new ConfigError(`backend must be one of ${BACKENDS.join(", ")} (got "${backend}")`);
  }
  const saved = await readSavedRun(options.checkpoint);
  const experts = saved.model.variant === "dense" ? ranks : saved.model.nExperts;
  if (experts % ranks !== 0) {
    throw new ConfigError(`ranks ${ranks} must divide the ${experts} experts`);
  }
  const data = dataOf(saved);
  const batch = data.batch ?? ranks;
  if (batch % ranks !== 0) {
    throw new ConfigError(`the batch of ${batch} must be a multiple of ranks ${ranks}`);
  }
  const owned = !isInitialized();
  const cluster = options.cluster ?? "local";
  if (owned && !cluster.startsWith("nats://")) {
    await checkBackend(backend, { allowSoftwareAdapter: options.allowSoftwareWebgpu });
  }
  if (owned) await init({ cluster });
  let group: RankGroup | undefined;
  try {
    ({ group } = await RankGroup.start(
      {
        model: saved.model,
        seed: saved.contents.state.seed,
        backend,
        allowSoftwareWebgpu: options.allowSoftwareWebgpu,
        data: { seq: data.seq ?? saved.model.blockSize, batch, source: data.source },
        optimizer: { lr: 0, warmup: 0, total: 1 },
        groups: data.groups,
      },
      ranks,
      saved.model,
    ));
    await group.load(saved.contents);
    return await fn(group, saved);
  } finally {
    if (owned) await shutdown();
    else await group?.stop();
  }
}

/** Options of {@linkcode evaluateCheckpoint}. */
export interface EvaluateOptions extends CheckpointGroupOptions {
  /**
   * The validation data (default: the data the run was trained on, as its
   * checkpoint records it; a token source is not recorded and must be given).
   */
  data?: DataSpec;
  /** Global validation batches (default as in training, 8). */
  batches?: number;
}

/**
 * The validation loss of a checkpoint (next-byte cross-entropy, nats), on
 * the same batches as the run's own evaluations: its sequence length and
 * global batch, in corpus order. On any number of ranks that divides the
 * experts and the batch, it equals the run's final validation loss.
 */
export async function evaluateCheckpoint(options: EvaluateOptions): Promise<number> {
  const batches = options.batches ?? VAL_BATCHES;
  if (!(Number.isSafeInteger(batches) && batches > 0)) {
    throw new ConfigError(`batches must be a positive integer (got ${batches})`);
  }
  const dataOf = ({ settings }: SavedRun) => {
    const source = options.data ?? settings.data;
    if (source === undefined || source.kind === "tokens") {
      throw new ConfigError(
        `${options.checkpoint} does not record its data (a token source): pass data`,
      );
    }
    // Gate capacity per micro-batch as in training: N trained ranks on M ranks make N/M groups.
    const trained = settings.ranks ?? 0;
    const ranks = options.ranks ?? 2;
    const groups = trained % ranks === 0 && trained > ranks ? trained / ranks : undefined;
    return { seq: settings.seq, batch: settings.batch, source, groups };
  };
  return await withCheckpointGroup(options, dataOf, async (group) => {
    const [loss] = await group.all((r) => r.evaluate(batches));
    return loss;
  });
}
