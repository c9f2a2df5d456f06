/**
 * {@linkcode createCommunicator}: a communicator whose transport and
 * algorithms run on a communication Worker (the analogue of a CUDA
 * communication stream). The returned object is a thin proxy that hands
 * arrays to that worker by transfer and gets results back by transfer, so
 * communication progresses while the calling thread is busy computing.
 *
 * @module
 */

import { buffersOf, type CallOp, type FromComm, type ToComm } from "./comm_protocol.ts";
import { CommunicatorClosedError, errorFromWire, PeerDiedError } from "./errors.ts";
import { nowMs } from "./link.ts";
import { offsetOfShortestTrip, type RoundTrip } from "./clock.ts";
import type {
  CollectiveOptions,
  CommStats,
  Communicator,
  Elem,
  GroupSpec,
  ReduceOp,
} from "./types.ts";

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  timing?: { doneAtMs?: number };
}

/** The options sent to the worker (the timing record stays here) and the timing record. */
function split(opts?: CollectiveOptions): [CollectiveOptions | undefined, Pending["timing"]] {
  if (!opts?.timing) return [opts, undefined];
  const { timing, ...rest } = opts;
  return [rest, timing];
}

/** Round trips to the communication thread that measure its clock (the shortest counts). */
export const CLOCK_PINGS = 8;

class CommProxy implements Communicator {
  readonly rank: number;
  readonly size: number;
  readonly groupId: string;
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 0;
  #failure?: Error;
  #closed?: () => void;
  /** The communication thread's clock less this thread's (see {@linkcode CLOCK_PINGS}). */
  #clockOffsetMs = 0;
  #clockReply?: (m: RoundTrip) => void;

  constructor(spec: GroupSpec, worker: Worker) {
    this.rank = spec.rank;
    this.size = spec.size;
    this.groupId = spec.groupId;
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent<FromComm>) => this.#onMessage(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#fail(new Error(`communication worker of rank ${this.rank} crashed: ${e.message}`));
    };
  }

  alltoallv<T extends Elem>(parts: T[], opts?: CollectiveOptions): Promise<T[]> {
    const [o, t] = split(opts);
    return this.#call("alltoallv", [parts, o], t);
  }
  allreduce<T extends Elem>(data: T, op: ReduceOp, opts?: CollectiveOptions): Promise<T> {
    const [o, t] = split(opts);
    return this.#call("allreduce", [data, op, o], t);
  }
  allgather<T extends Elem>(data: T, opts?: CollectiveOptions): Promise<T[]> {
    const [o, t] = split(opts);
    return this.#call("allgather", [data, o], t);
  }
  reduceScatter<T extends Elem>(
    data: T,
    op: ReduceOp,
    opts?: CollectiveOptions & { counts?: number[] },
  ): Promise<T> {
    const [o, t] = split(opts);
    return this.#call("reduceScatter", [data, op, o], t);
  }
  broadcast<T extends Elem>(data: T | null, root: number, opts?: CollectiveOptions): Promise<T> {
    const [o, t] = split(opts);
    return this.#call("broadcast", [data, root, o], t);
  }
  barrier(opts?: CollectiveOptions): Promise<void> {
    const [o, t] = split(opts);
    return this.#call("barrier", [o], t);
  }
  send(dst: number, data: Elem, opts?: CollectiveOptions): Promise<void> {
    const [o, t] = split(opts);
    return this.#call("send", [dst, data, o], t);
  }
  recv(src: number, opts?: CollectiveOptions): Promise<Elem> {
    const [o, t] = split(opts);
    return this.#call("recv", [src, o], t);
  }
  /** Counters of the transport on the communication worker. */
  stats(): Promise<CommStats> {
    return this.#call("stats", []);
  }

  markPeerDied(rank: number, reason?: string): void {
    this.#fail(new PeerDiedError(rank, reason));
    this.#post({ type: "died", rank, reason });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const closed = new Promise<void>((resolve) => (this.#closed = resolve));
    this.#fail(new CommunicatorClosedError(this.groupId));
    this.#post({ type: "close" });
    const timer = setTimeout(() => this.#closed!(), 2000);
    await closed;
    clearTimeout(timer);
    this.#worker.terminate();
  }

  /**
   * Measures the communication thread's clock against this one's: each
   * Worker's `nowMs()` starts from its own time origin, and two of them were
   * seen 1 to 4 ms apart, as much as a hand-off or a short transfer. Of
   * {@linkcode CLOCK_PINGS} round trips the shortest gives the offset (its
   * error at most half of that round trip).
   */
  async syncClock(): Promise<void> {
    this.#clockOffsetMs = await offsetOfShortestTrip(
      CLOCK_PINGS,
      () =>
        new Promise<RoundTrip>((resolve) => {
          this.#clockReply = resolve;
          this.#post({ type: "clock", sentAt: nowMs() });
        }),
    );
    this.#clockReply = undefined;
  }

  #call<R>(op: CallOp, args: unknown[], timing?: Pending["timing"]): Promise<R> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise<R>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timing });
      this.#post({ type: "call", id, op, args }, args);
    });
  }

  /** Posts `m`, transferring the buffers under `transfer`; copies when a buffer cannot move. */
  #post(m: ToComm, transfer?: unknown): void {
    try {
      this.#worker.postMessage(m, buffersOf(transfer));
    } catch (e) {
      if (!(e instanceof DOMException && e.name === "DataCloneError")) throw e;
      this.#worker.postMessage(m);
    }
  }

  #onMessage(m: FromComm): void {
    if (m.type === "closed") return this.#closed?.();
    if (m.type === "clock") return this.#clockReply?.({ ...m, back: nowMs() });
    if (m.type !== "result" && m.type !== "failed") return;
    if (m.id === undefined) return;
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (m.type === "result") {
      // In this thread's clock, as the caller's own `nowMs()` times.
      if (p.timing) p.timing.doneAtMs = m.doneAt - this.#clockOffsetMs;
      p.resolve(m.value);
    } else p.reject(errorFromWire(m.error));
  }

  #fail(e: Error): void {
    this.#failure ??= e;
    for (const p of this.#pending.values()) p.reject(this.#failure);
    this.#pending.clear();
  }
}

/**
 * Joins a group from this thread: starts a communication Worker that owns the
 * transport (local MessagePorts are transferred to it; for `nats` it opens its
 * own connection) and resolves once the transport is up and the worker's
 * clock is measured against this thread's (so `timing.doneAtMs` reads in
 * this thread's `nowMs()`). Calls on the result
 * transfer their input arrays to that worker (the caller must not use them
 * afterwards) and resolve with arrays transferred back.
 *
 * @example
 * ```ts
 * import { createCommunicator } from "./comm.ts";
 * const { port1, port2 } = new MessageChannel();
 * const [a, b] = await Promise.all([
 *   createCommunicator({ kind: "local", groupId: "g", rank: 0, size: 2, ports: [null, port1] }),
 *   createCommunicator({ kind: "local", groupId: "g", rank: 1, size: 2, ports: [port2, null] }),
 * ]);
 * const [x] = await Promise.all([a.allreduce(Float32Array.of(1), "sum"), b.allreduce(Float32Array.of(2), "sum")]);
 * x[0]; // 3
 * await Promise.all([a.close(), b.close()]);
 * ```
 */
export function createCommunicator(
  spec: GroupSpec,
): Promise<Communicator & { stats(): Promise<CommStats> }> {
  const worker = new Worker(new URL("./comm_worker.ts", import.meta.url), { type: "module" });
  const ports = spec.kind === "local" ? spec.ports.filter((p): p is MessagePort => p !== null) : [];
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<FromComm>) => {
      if (e.data.type === "ready") {
        const proxy = new CommProxy(spec, worker);
        proxy.syncClock().then(() => resolve(proxy), reject);
      } else if (e.data.type === "failed") {
        worker.terminate();
        reject(errorFromWire(e.data.error));
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      worker.terminate();
      reject(new Error(`communication worker failed to start: ${e.message}`));
    };
    worker.postMessage({ type: "init", spec } satisfies ToComm, ports);
  });
}
