/**
 * A {@linkcode Communicator} over a {@linkcode Transport}: the bookkeeping
 * around the algorithms. It gives each call its own wire tag (by user tag and
 * occurrence, or by issue order when untagged), a deadline, and aborts every
 * pending call when a peer dies or the group closes.
 *
 * @module
 */

import * as algo from "./algorithms.ts";
import { CollectiveTimeoutError, CommunicatorClosedError, PeerDiedError } from "./errors.ts";
import { owned, type Transport } from "./transport.ts";
import type { CollectiveOptions, CommStats, Communicator, Elem, ReduceOp } from "./types.ts";

/** Options of an {@linkcode Engine}. */
export interface EngineOptions {
  /** Name of the group. */
  groupId: string;
  /** Default deadline of every call in milliseconds (60 s when omitted). */
  timeoutMs?: number;
}

/** The default deadline of a call, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Runs the collective algorithms of one rank on the current thread.
 *
 * @example
 * ```ts
 * import { createMemoryGroup } from "./memory.ts";
 * const [a, b] = createMemoryGroup(2); // Engines over an in-memory transport
 * const [x, y] = await Promise.all([
 *   a.allreduce(new Float32Array([1]), "sum"),
 *   b.allreduce(new Float32Array([2]), "sum"),
 * ]);
 * x[0] === 3 && y[0] === 3; // true
 * ```
 */
export class Engine implements Communicator {
  /** This member's rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  /** Name of the group. */
  readonly groupId: string;
  #transport: Transport;
  #timeoutMs: number;
  #untagged = 0;
  #tagUses = new Map<string, number>();
  #pending = new Set<AbortController>();
  #failure?: Error;

  /** @param transport This rank's transport (the engine closes it). @param opts Group name and deadline. */
  constructor(transport: Transport, opts: EngineOptions) {
    this.#transport = transport;
    this.rank = transport.rank;
    this.size = transport.size;
    this.groupId = opts.groupId;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Counters of the transport: frames dropped (malformed, or from another job). */
  stats(): Promise<CommStats> {
    return Promise.resolve({ droppedFrames: this.#transport.droppedFrames });
  }

  /** `parts[j]` goes to rank j; result `[i]` came from rank i. */
  alltoallv<T extends Elem>(parts: T[], opts?: CollectiveOptions): Promise<T[]> {
    return this.#run("alltoallv", opts, this.#key(opts), (p) => algo.alltoallv(p, parts));
  }

  /** Elementwise reduction across ranks (ring reduce-scatter then all-gather). */
  allreduce<T extends Elem>(data: T, op: ReduceOp, opts?: CollectiveOptions): Promise<T> {
    return this.#run("allreduce", opts, this.#key(opts), (p) => algo.allreduce(p, data, op));
  }

  /** Result `[i]` is rank i's array. */
  allgather<T extends Elem>(data: T, opts?: CollectiveOptions): Promise<T[]> {
    return this.#run("allgather", opts, this.#key(opts), (p) => algo.allgather(p, data));
  }

  /** This rank's block of the reduction. */
  reduceScatter<T extends Elem>(
    data: T,
    op: ReduceOp,
    opts?: CollectiveOptions & { counts?: number[] },
  ): Promise<T> {
    return this.#run(
      "reduceScatter",
      opts,
      this.#key(opts),
      (p) => algo.reduceScatter(p, data, op, opts?.counts),
    );
  }

  /** Root's array delivered to every rank. */
  broadcast<T extends Elem>(data: T | null, root: number, opts?: CollectiveOptions): Promise<T> {
    return this.#run("broadcast", opts, this.#key(opts), (p) => algo.broadcast(p, data, root));
  }

  /** Resolves once every rank has entered the barrier. */
  async barrier(opts?: CollectiveOptions): Promise<void> {
    const empty = Array.from({ length: this.size }, () => new Int32Array(0));
    await this.#run("barrier", opts, this.#key(opts), (p) => algo.alltoallv(p, empty));
  }

  /** Point-to-point send, ordered per (src, dst, tag). */
  send(dst: number, data: Elem, opts?: CollectiveOptions): Promise<void> {
    return this.#run("send", opts, `p:${opts?.tag ?? ""}`, (p) => p.send(dst, owned(data)));
  }

  /** The next array from `src` with this tag. */
  recv(src: number, opts?: CollectiveOptions): Promise<Elem> {
    return this.#run("recv", opts, `p:${opts?.tag ?? ""}`, (p) => p.recv(src));
  }

  /** Rejects every pending and later call with {@linkcode PeerDiedError}. */
  markPeerDied(rank: number, reason?: string): void {
    this.#fail(new PeerDiedError(rank, reason));
  }

  /** Rejects pending calls with {@linkcode CommunicatorClosedError} and closes the transport. */
  async close(): Promise<void> {
    this.#fail(new CommunicatorClosedError(this.groupId));
    await this.#transport.close();
  }

  #fail(e: Error): void {
    this.#failure ??= e;
    for (const c of this.#pending) c.abort(this.#failure);
    this.#pending.clear();
  }

  /** The wire tag of a collective: by user tag and its occurrence, or by issue order. */
  #key(opts?: CollectiveOptions): string {
    if (opts?.tag === undefined) return `u:${this.#untagged++}`;
    const n = this.#tagUses.get(opts.tag) ?? 0;
    this.#tagUses.set(opts.tag, n + 1);
    return `t:${opts.tag}#${n}`;
  }

  async #run<R>(
    op: string,
    opts: CollectiveOptions | undefined,
    key: string,
    body: (p: algo.Pipe) => Promise<R>,
  ): Promise<R> {
    if (this.#failure) throw this.#failure;
    const ctrl = new AbortController();
    const { signal } = ctrl;
    const waiting = new Map<number, number>();
    const t = this.#transport;
    const pipe: algo.Pipe = {
      rank: this.rank,
      size: this.size,
      send: (dst, data, stream = 0) => t.send(dst, streamTag(key, stream), data, signal),
      recv: async (src, stream = 0) => {
        waiting.set(src, (waiting.get(src) ?? 0) + 1);
        try {
          return await t.recv(src, streamTag(key, stream), signal);
        } finally {
          const k = waiting.get(src)! - 1;
          if (k === 0) waiting.delete(src);
          else waiting.set(src, k);
        }
      },
    };
    const timeoutMs = opts?.timeoutMs ?? this.#timeoutMs;
    const timer = setTimeout(() => {
      const missing = [...waiting.keys()].sort((a, b) => a - b);
      ctrl.abort(new CollectiveTimeoutError(op, this.rank, missing, timeoutMs, opts?.tag));
    }, timeoutMs);
    const aborted = new Promise<never>((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
    aborted.catch(() => {});
    this.#pending.add(ctrl);
    try {
      return await Promise.race([body(pipe), aborted]);
    } finally {
      clearTimeout(timer);
      this.#pending.delete(ctrl);
      if (!signal.aborted) ctrl.abort(new Error(`${op} finished`));
    }
  }
}

/** The wire tag of stream `stream` of the call tagged `key` (stream 0 keeps the call's tag). */
function streamTag(key: string, stream: number): string {
  return stream === 0 ? key : `${key}/${stream}`;
}
