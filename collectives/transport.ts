/**
 * The point-to-point layer under the collective algorithms: tagged typed
 * arrays, ordered per (source, destination, tag). Every transport (memory,
 * local MessagePorts, NATS) implements {@linkcode Transport}; the algorithms
 * are written once above it.
 *
 * @module
 */

import { Inbound, LinkClock } from "./link.ts";
import { Mailbox } from "./mailbox.ts";
import type { Elem, LinkModel } from "./types.ts";

/** Point-to-point transport of one rank. */
export interface Transport {
  /** This rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  /**
   * Sends `data` to `dst` under `tag`. Takes ownership of `data` (its buffer
   * may be transferred): `data` must view its whole, unshared buffer
   * (see {@linkcode owned}). Resolves once the transport accepted the frame.
   */
  send(dst: number, tag: string, data: Elem, signal?: AbortSignal): Promise<void>;
  /** The next array from `src` under `tag`. */
  recv(src: number, tag: string, signal?: AbortSignal): Promise<Elem>;
  /** Frames dropped because they were malformed or belonged to another job. */
  readonly droppedFrames: number;
  /** Releases sockets, ports and timers. */
  close(): Promise<void>;
}

/** Options shared by every transport. */
export interface TransportOptions {
  /** Emulated egress link of this rank. */
  link?: LinkModel;
  /** Fault injection: random extra delivery delay per frame, up to this many ms. */
  jitterMs?: number;
}

/**
 * What every transport shares: the sender's link clock, the receiver's
 * hold-until-due queue, the mailbox and the drop counter. A subclass moves
 * stamped frames ({@linkcode BaseTransport.transmit}) and calls {@linkcode BaseTransport.arrive} on the receiving side.
 */
export abstract class BaseTransport implements Transport {
  /** This rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  #mailbox = new Mailbox();
  #inbound = new Inbound((src, tag, data) => this.#mailbox.deliver(src, tag, data));
  #clock: LinkClock;
  #dropped = 0;

  /** @param rank This rank. @param size Number of ranks. @param opts Link and jitter. */
  constructor(rank: number, size: number, opts: TransportOptions = {}) {
    this.rank = rank;
    this.size = size;
    this.#clock = new LinkClock(opts.link, opts.jitterMs);
  }

  /** Frames dropped so far. */
  get droppedFrames(): number {
    return this.#dropped;
  }

  /** Stamps the frame and hands it to {@linkcode BaseTransport.transmit}; frames to self arrive directly. */
  send(dst: number, tag: string, data: Elem, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!Number.isInteger(dst) || dst < 0 || dst >= this.size) {
      return Promise.reject(new RangeError(`rank ${dst} is not in a group of ${this.size}`));
    }
    const readyAt = this.#clock.stamp(data.byteLength);
    if (dst === this.rank) {
      this.arrive(dst, tag, data, readyAt);
      return Promise.resolve();
    }
    return this.transmit(dst, tag, data, readyAt, signal);
  }

  /** Moves one stamped frame to another rank; resolves once the transport accepted it. */
  protected abstract transmit(
    dst: number,
    tag: string,
    data: Elem,
    readyAt: number,
    signal?: AbortSignal,
  ): Promise<void>;

  /** The next array from `src` under `tag`. */
  recv(src: number, tag: string, signal?: AbortSignal): Promise<Elem> {
    return this.#mailbox.take(src, tag, signal);
  }

  /** Stops delivering; subclasses release their own resources too. */
  close(): Promise<void> {
    this.#inbound.close();
    return Promise.resolve();
  }

  /** Accepts a frame that reached this rank; it is delivered once due. */
  protected arrive(src: number, tag: string, data: Elem, readyAt: number): void {
    this.#inbound.push(src, tag, data, readyAt);
  }

  /** Counts a frame that was dropped. */
  protected drop(): void {
    this.#dropped++;
  }
}

/**
 * `data` itself when it views its whole non-shared buffer, else a copy that
 * does: what {@linkcode Transport.send} takes.
 *
 * @example
 * ```ts
 * import { owned } from "./transport.ts";
 * const a = new Float32Array(4);
 * owned(a) === a; // true
 * owned(a.subarray(1)).buffer === a.buffer; // false
 * ```
 */
export function owned<T extends Elem>(data: T): T {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  return whole && data.buffer instanceof ArrayBuffer ? data : data.slice() as T;
}
