/**
 * The contracts of the data plane: what a communicator offers and how a group
 * is described. `collectives/` knows bytes and typed arrays, never tensors.
 *
 * @module
 */
import type { NatsCredentials } from "./nats_connect.ts";

/** Element arrays a collective moves. */
export type Elem = Float32Array | Int32Array;

/** Reduction applied by {@linkcode Communicator.allreduce} and friends. */
export type ReduceOp = "sum" | "mean";

/** A point-to-point link's speed, used to emulate slower networks. */
export interface LinkModel {
  /** Sustained rate of the link in bytes per second. */
  bandwidthBytesPerS: number;
  /** One-way latency added to each frame, in seconds. */
  latencyS: number;
}

/** Options every collective call takes. */
export interface CollectiveOptions {
  /**
   * Identifies the call across ranks. All ranks must pass the same tag for the
   * same call. When omitted, calls are matched by their order of issue, as in
   * NCCL: every rank must then issue its untagged collectives in one order.
   */
  tag?: string;
  /** Deadline for this call in milliseconds (the group default otherwise). */
  timeoutMs?: number;
  /**
   * Filled in when the call succeeds, for overlap measurements: `doneAtMs` is
   * when the communication thread completed it (as `nowMs()` of `link.ts` on
   * the calling thread: corrected for the two threads' clocks),
   * which can be well before the caller's thread sees the result. Stays on
   * this rank; left empty where no communication thread reports it.
   */
  timing?: { doneAtMs?: number };
}

/** Counters of a communicator's transport. */
export interface CommStats {
  /** Frames dropped because they were malformed or came from another job. */
  droppedFrames: number;
}

/**
 * A group of ranks that move typed arrays among themselves. Every call
 * returns a future at once; the bytes move on the communication thread while
 * the caller computes. Input arrays may be transferred (detached) by the call:
 * the caller must not use them afterwards.
 */
export interface Communicator {
  /** This member's rank, 0-based. */
  readonly rank: number;
  /** Number of ranks in the group. */
  readonly size: number;
  /** Name of the group, unique within a job. */
  readonly groupId: string;
  /** `parts[j]` goes to rank j; result `[i]` came from rank i. Parts may be empty and uneven. */
  alltoallv<T extends Elem>(parts: T[], opts?: CollectiveOptions): Promise<T[]>;
  /** Elementwise reduction across ranks (ring reduce-scatter then all-gather). */
  allreduce<T extends Elem>(data: T, op: ReduceOp, opts?: CollectiveOptions): Promise<T>;
  /** Result `[i]` is rank i's array. */
  allgather<T extends Elem>(data: T, opts?: CollectiveOptions): Promise<T[]>;
  /**
   * Reduces `data` across ranks and returns this rank's block of the result.
   * Blocks are contiguous: block r has `counts[r]` elements (equal split when
   * omitted; then the length must divide by size).
   */
  reduceScatter<T extends Elem>(
    data: T,
    op: ReduceOp,
    opts?: CollectiveOptions & { counts?: number[] },
  ): Promise<T>;
  /** Root's array delivered to every rank (non-roots pass `null`). */
  broadcast<T extends Elem>(data: T | null, root: number, opts?: CollectiveOptions): Promise<T>;
  /** Resolves once every rank has entered the barrier. */
  barrier(opts?: CollectiveOptions): Promise<void>;
  /** Point-to-point send, ordered per (src, dst, tag). */
  send(dst: number, data: Elem, opts?: CollectiveOptions): Promise<void>;
  /** Point-to-point receive of the next array from `src` with this tag. */
  recv(src: number, opts?: CollectiveOptions): Promise<Elem>;
  /** Told by the runtime that a member died: pending and later calls reject with `PeerDiedError`. */
  markPeerDied(rank: number, reason?: string): void;
  /** Releases the transport and the communication thread. */
  close(): Promise<void>;
}

/** A group whose members are Workers of one process, joined by MessagePorts. */
export interface LocalGroupSpec {
  /** Which transport. */
  kind: "local";
  /** The group's name. */
  groupId: string;
  /** This member's rank. */
  rank: number;
  /** Members in the group. */
  size: number;
  /** `ports[j]` talks to rank j; `ports[rank]` is unused (null). */
  ports: (MessagePort | null)[];
  /** Optional emulated link (applied per frame on the sending side). */
  link?: LinkModel;
  /** Default deadline of every call, in milliseconds. */
  timeoutMs?: number;
  /** Fault injection for tests: random extra delivery delay per frame, up to this many ms. */
  jitterMs?: number;
}

/** A group whose members talk through a NATS server. */
export interface NatsGroupSpec extends NatsCredentials {
  /** Which transport. */
  kind: "nats";
  /** The group's name. */
  groupId: string;
  /** This member's rank. */
  rank: number;
  /** Members in the group. */
  size: number;
  /** Random job id; subjects are namespaced by it. */
  jobId: string;
  /** The server's max_payload in bytes; larger messages are chunked (the server's own limit is obeyed too). */
  maxPayload?: number;
  /** Bytes a sender may have in flight to one peer before it waits for the peer's acknowledgement (8 MiB). */
  maxInflightBytes?: number;
  /** Optional emulated link (applied per frame on the sending side). */
  link?: LinkModel;
  /** Default deadline of every call, in milliseconds. */
  timeoutMs?: number;
  /** Fault injection for tests: random extra delivery delay per frame, up to this many ms. */
  jitterMs?: number;
}

/** How one member joins its group. Plain data, except for local MessagePorts. */
export type GroupSpec = LocalGroupSpec | NatsGroupSpec;
