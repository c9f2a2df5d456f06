/**
 * The driver's side of expert-parallel ranks: start N {@linkcode RankActor}s
 * as one collective group, call a method on all of them at once, and move a
 * checkpoint between them and disk (the driver is the single writer).
 *
 * @module
 */
import { createGroup, get, type ObjectRef, remote } from "../actors/mod.ts";
import type { ActorHandle } from "../actors/mod.ts";
import {
  type CheckpointContents,
  type HostTensor,
  mergeShards,
  saveCheckpoint,
  shardExperts,
  type TrainState,
} from "../models/checkpoint.ts";
import type { ModelConfig } from "../models/config.ts";
import type { RankActor, RankConfig, ShardData } from "../models/rank_actor.ts";

const Rank = remote<typeof RankActor>(
  new URL("../models/rank_actor.ts", import.meta.url),
  "RankActor",
);

/** N rank actors forming one group, rank i being `handles[i]`. */
export class RankGroup {
  /** The actors, by rank. */
  readonly handles: ActorHandle<RankActor>[];
  /** The resolved model config they share. */
  readonly model: ModelConfig;

  private constructor(handles: ActorHandle<RankActor>[], model: ModelConfig) {
    this.handles = handles;
    this.model = model;
  }

  /**
   * Creates `size` ranks from `base` (everything but the rank, size and
   * group), groups them and runs their `setup`. The actor runtime must be
   * started (`init`).
   *
   * @returns the group and the parameter count of each rank.
   */
  static async start(
    base: Omit<RankConfig, "rank" | "size" | "groupId">,
    size: number,
    model: ModelConfig,
  ): Promise<{ group: RankGroup; paramCounts: number[] }> {
    const groupId = `ranks-${crypto.randomUUID().slice(0, 8)}`;
    const handles = await Promise.all(
      Array.from({ length: size }, (_, rank) => Rank.remote({ ...base, rank, size, groupId })),
    );
    if (size > 1) createGroup(handles, { groupId, timeoutMs: 120_000 });
    const group = new RankGroup(handles, model);
    return { group, paramCounts: await group.all((r) => r.setup()) };
  }

  /** Number of ranks. */
  get size(): number {
    return this.handles.length;
  }

  /** Calls `fn` on every rank at once and waits for all results, by rank. */
  all<T>(fn: (rank: ActorHandle<RankActor>, index: number) => ObjectRef<T>): Promise<T[]> {
    return get(this.handles.map(fn));
  }

  /**
   * Gathers every rank's tensors and writes them as one checkpoint of
   * `state.step` under `dir`.
   *
   * @returns the checkpoint's directory.
   */
  async save(dir: string, state: TrainState, config: Record<string, unknown>): Promise<string> {
    const shards = await this.all((r) => r.exportShard());
    const merge = (pick: (s: ShardData) => Record<string, HostTensor>) =>
      mergeShards(shards.map((s) => new Map(Object.entries(pick(s)))));
    return await saveCheckpoint(dir, {
      params: merge((s) => s.params),
      optimizer: { step: shards[0].optimizerStep, tensors: merge((s) => s.moments) },
      config,
      state,
    });
  }

  /**
   * Loads a checkpoint read whole from disk: each rank gets the dense
   * tensors and its own experts (re-sharded when the checkpoint came from a
   * different number of ranks) and resumes at `contents.state.step`.
   */
  async load(contents: CheckpointContents): Promise<void> {
    const experts = this.model.variant === "dense" ? this.size : this.model.nExperts;
    const pick = (m: Map<string, HostTensor>, rank: number) =>
      Object.fromEntries(
        shardExperts(m.keys(), rank, this.size, experts).map((n) => [n, m.get(n)!]),
      );
    await this.all((r, rank) =>
      r.importShard({
        params: pick(contents.params, rank),
        moments: pick(contents.optimizer.tensors, rank),
        optimizerStep: contents.optimizer.step,
      }, contents.state.step)
    );
  }
}
