/**
 * All ranks of a group in the current thread, over an in-memory transport,
 * running the same algorithms as the real transports. For tests of code that
 * uses a {@linkcode Communicator} with N ranks in one process.
 *
 * @module
 */

import { Engine } from "./engine.ts";
import { BaseTransport, type TransportOptions } from "./transport.ts";
import type { Communicator, Elem, LinkModel } from "./types.ts";

/** Options of {@linkcode createMemoryGroup}. */
export interface MemoryGroupOptions {
  /** Emulated egress link of every rank. */
  link?: LinkModel;
  /** Default deadline of every call in milliseconds (60 s when omitted). */
  timeoutMs?: number;
  /** Name of the group (`"memory"` when omitted). */
  groupId?: string;
  /** Fault injection: random extra delivery delay per frame, up to this many ms. */
  jitterMs?: number;
}

class MemoryTransport extends BaseTransport {
  #peers: MemoryTransport[];

  constructor(rank: number, peers: MemoryTransport[], size: number, opts: TransportOptions) {
    super(rank, size, opts);
    this.#peers = peers;
  }

  protected transmit(dst: number, tag: string, data: Elem, readyAt: number): Promise<void> {
    this.#peers[dst].arrive(this.rank, tag, data, readyAt);
    return Promise.resolve();
  }
}

/**
 * Makes `size` communicators that talk in memory; index i is rank i.
 * Arrays are handed over without copies, so callers must not reuse what they pass.
 *
 * @example
 * ```ts
 * import { createMemoryGroup } from "./memory.ts";
 * const group = createMemoryGroup(3);
 * const sums = await Promise.all(
 *   group.map((c) => c.allreduce(new Float32Array([c.rank]), "sum")),
 * );
 * sums.every((s) => s[0] === 3); // true
 * ```
 */
export function createMemoryGroup(size: number, opts: MemoryGroupOptions = {}): Communicator[] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`group size ${size} < 1`);
  const peers: MemoryTransport[] = [];
  for (let r = 0; r < size; r++) peers.push(new MemoryTransport(r, peers, size, opts));
  const groupId = opts.groupId ?? "memory";
  return peers.map((t) => new Engine(t, { groupId, timeoutMs: opts.timeoutMs }));
}
