/**
 * The driver's side of expert-parallel ranks: start N {@linkcode RankActor}s
 * as one collective group, call a method on all of them at once, re-form the
 * group after a rank died, and move a checkpoint between them and disk (the
 * driver is the single writer).
 *
 * @module
 */
import {
  ActorDiedError,
  createGroup,
  get,
  GetTimeoutError,
  kill,
  type ObjectRef,
  onBusEvent,
  remote,
} from "../actors/mod.ts";
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
import type { RankActor, RankConfig, ShardData } from "./rank_actor.ts";

const Rank = remote<typeof RankActor>(
  new URL("./rank_actor.ts", import.meta.url),
  "RankActor",
);

/** Options of {@linkcode RankGroup.start}. */
export interface RankGroupOptions {
  /** Times each rank actor is restarted by the runtime after dying (default 0). */
  maxRestarts?: number;
  /** Deadline of every collective call, in milliseconds (default 120 s). */
  collectiveTimeoutMs?: number;
  /** Agent id or host name to place each rank on, by rank (nats clusters; default: round-robin). */
  hosts?: readonly string[];
}

/** What every rank of a group shares: a {@linkcode RankConfig} less its rank, size and group. */
export type RankSettings = Omit<RankConfig, "rank" | "size" | "groupId">;

/** Milliseconds a liveness ping waits before it is sent again (its message may have been lost). */
const PING_MS = 1000;

/** The driver's NATS connection dropped while calls on the ranks were pending. */
export class BusOutageError extends Error {
  /** Makes the error; the message is one line. */
  constructor() {
    super(
      "the driver lost its NATS connection (nats-server gone?); messages in flight may be lost",
    );
    this.name = "BusOutageError";
  }
}

/**
 * Follows the driver's NATS connection. A message published around an outage
 * may be lost (the server dropped it, or its subscriber had not re-subscribed
 * yet), so a call pending across one is failed rather than waited for.
 */
class BusWatch {
  #outages = 0;
  #down = false;
  readonly #listeners = new Set<() => void>();

  constructor() {
    onBusEvent((event) => {
      if (event === "disconnect") this.#outages++;
      this.#down = event === "disconnect";
      for (const l of [...this.#listeners]) l();
    });
  }

  /**
   * `p`, or a {@linkcode BusOutageError} as soon as the connection drops before
   * `p` settles (at once when it is down now).
   */
  guard<T>(p: Promise<T>): Promise<T> {
    const seen = this.#outages;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.#outages === seen) return;
        this.#listeners.delete(check);
        reject(new BusOutageError());
      };
      this.#listeners.add(check);
      p.then(resolve, reject).finally(() => this.#listeners.delete(check));
      if (this.#down) reject(new BusOutageError());
    });
  }

  /** Resolves once the connection is up (at once when it is). */
  up(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.#down) return;
        this.#listeners.delete(check);
        resolve();
      };
      this.#listeners.add(check);
      check();
    });
  }
}

/** N rank actors forming one group, rank i being `handles[i]`. */
export class RankGroup {
  /** The resolved model config they share. */
  readonly model: ModelConfig;
  #handles: ActorHandle<RankActor>[];
  #groupId = "";
  readonly #base: RankSettings;
  readonly #options: RankGroupOptions;
  readonly #bus = new BusWatch();

  private constructor(
    handles: ActorHandle<RankActor>[],
    model: ModelConfig,
    base: RankSettings,
    options: RankGroupOptions,
  ) {
    this.#handles = handles;
    this.model = model;
    this.#base = base;
    this.#options = options;
  }

  /**
   * Creates `size` ranks from `base` (everything but the rank, size and
   * group), groups them and runs their `setup`. The actor runtime must be
   * started (`init`).
   *
   * @returns the group and the parameter count of each rank.
   */
  static async start(
    base: RankSettings,
    size: number,
    model: ModelConfig,
    options: RankGroupOptions = {},
  ): Promise<{ group: RankGroup; paramCounts: number[] }> {
    const group = new RankGroup([], model, base, options);
    const groupId = newGroupId();
    group.#handles = await Promise.all(
      Array.from({ length: size }, (_, rank) => group.#spawn(rank, size, groupId)),
    );
    return { group, paramCounts: await group.#form(groupId) };
  }

  /** The actors, by rank (a rank replaced by {@linkcode RankGroup.regroup} has a new handle). */
  get handles(): readonly ActorHandle<RankActor>[] {
    return this.#handles;
  }

  /** The collective group the ranks form now (a new one after each {@linkcode RankGroup.regroup}). */
  get groupId(): string {
    return this.#groupId;
  }

  /** Number of ranks. */
  get size(): number {
    return this.#handles.length;
  }

  /**
   * Calls `fn` on every rank at once and waits for all results, by rank.
   *
   * @throws {BusOutageError} when the driver's NATS connection drops meanwhile.
   */
  all<T>(fn: (rank: ActorHandle<RankActor>, index: number) => ObjectRef<T>): Promise<T[]> {
    return this.#bus.guard(get(this.#handles.map(fn)));
  }

  /**
   * After a rank died, a collective failed or the NATS connection dropped:
   * waits for the connection and for every rank to answer (the runtime
   * restarts dead ones up to `maxRestarts`; a rank past its restarts is
   * replaced by a new actor), makes them a new group and sets every rank up
   * afresh in it. The model is then as initialized: {@linkcode RankGroup.load}
   * a checkpoint to go on.
   *
   * @returns the incarnation of each rank (0 for a new actor).
   * @throws {Error} when a rank does not answer within the collective
   *   deadline plus 30 s (it may still be finishing a collective that failed).
   */
  async regroup(): Promise<number[]> {
    await this.#bus.up();
    const groupId = newGroupId();
    const size = this.size;
    const giveUp = Date.now() + (this.#options.collectiveTimeoutMs ?? 120_000) + 30_000;
    this.#handles = await Promise.all(this.#handles.map(async (handle, rank) => {
      // A call in flight when the runtime declared the rank dead fails even
      // when the runtime restarts it (the next call waits for the restart);
      // only a second death in a row means the rank is gone for good.
      let deaths = 0;
      while (true) {
        try {
          await get(handle.incarnation(), { timeoutMs: PING_MS });
          return handle;
        } catch (e) {
          if (e instanceof ActorDiedError && ++deaths === 2) {
            return await this.#spawn(rank, size, groupId);
          }
          if (!(e instanceof ActorDiedError || e instanceof GetTimeoutError)) throw e;
          if (Date.now() > giveUp) throw new Error(`rank ${rank} stopped answering`);
        }
      }
    }));
    await this.#form(groupId);
    return await this.all((r) => r.incarnation());
  }

  /** Creates the actor of `rank`. */
  #spawn(rank: number, size: number, groupId: string): Promise<ActorHandle<RankActor>> {
    return Rank.options({
      maxRestarts: this.#options.maxRestarts ?? 0,
      host: this.#options.hosts?.[rank],
    })
      .remote({ ...this.#base, rank, size, groupId });
  }

  /** Makes the live ranks group `groupId` and sets them up in it; returns their parameter counts. */
  #form(groupId: string): Promise<number[]> {
    const timeoutMs = this.#options.collectiveTimeoutMs ?? 120_000;
    this.#groupId = groupId;
    if (this.size > 1) createGroup(this.#handles, { groupId, timeoutMs });
    return this.all((r) => r.setup(groupId));
  }

  /** Kills the rank actors (a runtime the caller keeps running is then free of them). */
  async stop(): Promise<void> {
    await Promise.all(this.#handles.map((h) => kill(h)));
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

/** A fresh, job-unique group name. */
function newGroupId(): string {
  return `ranks-${crypto.randomUUID().slice(0, 8)}`;
}
