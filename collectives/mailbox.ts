/**
 * Matching of arrived frames with waiting receivers, by (source, tag), in
 * order of arrival.
 *
 * @module
 */

import type { Elem } from "./types.ts";

interface Waiter {
  resolve(data: Elem): void;
  reject(reason: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * Frames that arrived and receivers that wait, keyed by (source, tag).
 *
 * @example
 * ```ts
 * import { Mailbox } from "./mailbox.ts";
 * const box = new Mailbox();
 * const got = box.take(1, "t");
 * box.deliver(1, "t", new Float32Array([1]));
 * (await got)[0]; // 1
 * ```
 */
export class Mailbox {
  #frames = new Map<string, Elem[]>();
  #waiters = new Map<string, Waiter[]>();

  /** Hands `data` to the oldest receiver waiting on (src, tag), or queues it. */
  deliver(src: number, tag: string, data: Elem): void {
    const key = `${src}\u0000${tag}`;
    const waiter = this.#waiters.get(key)?.shift();
    if (waiter) {
      if (this.#waiters.get(key)!.length === 0) this.#waiters.delete(key);
      waiter.signal?.removeEventListener("abort", waiter.onAbort!);
      waiter.resolve(data);
      return;
    }
    const q = this.#frames.get(key);
    if (q) q.push(data);
    else this.#frames.set(key, [data]);
  }

  /** The next frame from `src` with `tag`; rejects with the signal's reason on abort. */
  take(src: number, tag: string, signal?: AbortSignal): Promise<Elem> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const key = `${src}\u0000${tag}`;
    const q = this.#frames.get(key);
    if (q) {
      const data = q.shift()!;
      if (q.length === 0) this.#frames.delete(key);
      return Promise.resolve(data);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal };
      const list = this.#waiters.get(key) ?? [];
      list.push(waiter);
      this.#waiters.set(key, list);
      if (!signal) return;
      waiter.onAbort = () => {
        const i = list.indexOf(waiter);
        if (i >= 0) list.splice(i, 1);
        if (list.length === 0 && this.#waiters.get(key) === list) this.#waiters.delete(key);
        reject(signal.reason);
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
    });
  }
}
