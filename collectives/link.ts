/**
 * The emulated link: the sender stamps every frame with the time it may be
 * delivered, and the receiver holds frames until then, in order per source.
 * Both live at the transport, so every transport obeys the same model.
 *
 * @module
 */

import type { Elem, LinkModel } from "./types.ts";

/** Wall-clock milliseconds since the epoch, with sub-millisecond precision, comparable across Workers. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The egress of one rank: frames to any destination share it, like a NIC.
 * A frame of `b` bytes sent at `t` leaves the link at
 * `done = max(free, t) + b / bandwidth` and may be delivered at
 * `done + latency` (plus an optional random jitter, for tests).
 *
 * @example
 * ```ts
 * import { LinkClock } from "./link.ts";
 * const clock = new LinkClock({ bandwidthBytesPerS: 1e6, latencyS: 0.001 });
 * const t0 = performance.timeOrigin + performance.now();
 * clock.stamp(1000) - t0; // about 2 (ms): 1 ms on the wire, 1 ms latency
 * ```
 */
export class LinkClock {
  #free = 0;
  #link?: LinkModel;
  #jitterMs: number;

  /**
   * @param link Bandwidth and latency; none means frames are ready at once.
   * @param jitterMs Random extra delay per frame, up to this many ms (fault injection).
   */
  constructor(link?: LinkModel, jitterMs = 0) {
    this.#link = link;
    this.#jitterMs = jitterMs;
  }

  /** The time (as {@linkcode nowMs}) a frame of `bytes` handed over now may be delivered. */
  stamp(bytes: number): number {
    const now = nowMs();
    let ready = now;
    if (this.#link) {
      this.#free = Math.max(this.#free, now) + (bytes / this.#link.bandwidthBytesPerS) * 1e3;
      ready = this.#free + this.#link.latencyS * 1e3;
    }
    return ready + Math.random() * this.#jitterMs;
  }
}

/**
 * Timers fire about a millisecond late. A held frame's timer is set this
 * many milliseconds early, and the thread then sleeps out the rest of the wait
 * (`Atomics.wait`: sub-millisecond, no CPU), so frames leave the link model
 * within about 0.1 ms of their stamp.
 */
export const TIMER_SLACK_MS = 1.5;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** A source whose drain goes on in the next task (see `Inbound.#yieldThenDrain`). */
const YIELDING = Symbol("yielding");

interface Held {
  tag: string;
  data: Elem;
  readyAt: number;
}

/**
 * Holds arrived frames until their stamp, then delivers them in arrival order
 * per source (so order per (source, tag) survives any stamps).
 *
 * @example
 * ```ts
 * import { Inbound } from "./link.ts";
 * const inbound = new Inbound((src, tag, data) => console.log(src, tag, data));
 * inbound.push(1, "t", new Int32Array([7]), 0); // delivered at once: stamp in the past
 * ```
 */
export class Inbound {
  #queues = new Map<number, Held[]>();
  #timers = new Map<number, ReturnType<typeof setTimeout> | typeof YIELDING>();
  #turn?: MessageChannel;
  #deliver: (src: number, tag: string, data: Elem) => void;

  /** @param deliver Called with each frame once it is due. */
  constructor(deliver: (src: number, tag: string, data: Elem) => void) {
    this.#deliver = deliver;
  }

  /** Accepts a frame from `src` that may be delivered at `readyAt`. */
  push(src: number, tag: string, data: Elem, readyAt: number): void {
    const q = this.#queues.get(src);
    if (q) q.push({ tag, data, readyAt });
    else this.#queues.set(src, [{ tag, data, readyAt }]);
    if (!this.#timers.has(src)) this.#drain(src);
  }

  /** Drops held frames and stops the timers. */
  close(): void {
    for (const t of this.#timers.values()) if (t !== YIELDING) clearTimeout(t);
    this.#timers.clear();
    this.#turn?.port1.close();
    this.#turn?.port2.close();
    this.#turn = undefined;
    this.#queues.clear();
  }

  #drain(src: number): void {
    const q = this.#queues.get(src)!;
    while (q.length > 0) {
      const wait = q[0].readyAt - nowMs();
      if (wait > TIMER_SLACK_MS) {
        const again = () => {
          this.#timers.delete(src);
          this.#drain(src);
        };
        this.#timers.set(src, setTimeout(again, wait - TIMER_SLACK_MS));
        return;
      }
      if (wait > 0) Atomics.wait(sleeper, 0, 0, wait);
      const f = q.shift()!;
      this.#deliver(src, f.tag, f.data);
      if (q.length > 0 && q[0].readyAt > nowMs()) return this.#yieldThenDrain(src);
    }
    this.#queues.delete(src);
  }

  /**
   * Goes on draining `src` in the next task, so that what the delivered
   * frame resolved (a chain forwarding it, say) runs before this thread
   * sleeps for the next frame.
   */
  #yieldThenDrain(src: number): void {
    if (!this.#turn) {
      this.#turn = new MessageChannel();
      this.#turn.port1.onmessage = (e: MessageEvent<number>) => {
        this.#timers.delete(e.data);
        this.#drain(e.data);
      };
    }
    this.#timers.set(src, YIELDING);
    this.#turn.port2.postMessage(src);
  }
}
