/**
 * A record of remote calls (each node keeps its most recent ones, see
 * {@linkcode DEFAULT_TIMELINE_CAPACITY}), written as Chrome trace JSON (opens
 * in Perfetto and chrome://tracing): one track per actor for execution, one
 * per caller for submissions.
 *
 * @module
 */

/** A Chrome trace (the JSON that Perfetto and chrome://tracing open). */
export interface ChromeTrace {
  /** The trace's events: complete ("X") events and metadata ("M"). */
  traceEvents: Record<string, unknown>[];
  /** The unit the viewer shows (`ms`). */
  displayTimeUnit: string;
}

/** One finished (or failed) call. */
export interface CallRecord {
  callId: string;
  caller: string;
  actor: string;
  method: string;
  /** Epoch milliseconds of submission, start and end of execution. */
  submitMs: number;
  startMs: number;
  endMs: number;
  /** Bytes of typed-array arguments. */
  bytes: number;
  ok: boolean;
}

/**
 * Records a {@linkcode Timeline} keeps by default: the most recent calls, so
 * that a long run's timeline stays bounded (records take about 230 bytes
 * each: some 25 MB per node at most).
 */
export const DEFAULT_TIMELINE_CAPACITY = 100_000;

/** Throws unless `n` is a valid timeline capacity (an integer >= 0, or Infinity). */
export function checkTimelineCapacity(n: number): number {
  if (!(Number.isInteger(n) && n >= 0) && n !== Infinity) {
    throw new RangeError(`timeline capacity must be an integer >= 0 or Infinity, got ${n}`);
  }
  return n;
}

/**
 * Collects call records in memory: a ring of the last `capacity` records,
 * older ones being dropped (and counted) as new ones arrive.
 *
 * @example
 * ```ts
 * import { Timeline } from "./timeline.ts";
 * const t = new Timeline(2);
 * const times = { submitMs: 0, startMs: 0, endMs: 0 };
 * for (const callId of ["a", "b", "c"]) {
 *   t.add({ callId, caller: "driver", actor: "a0", method: "m", ...times, bytes: 0, ok: true });
 * }
 * t.records.map((r) => r.callId); // ["b", "c"]
 * t.dropped; // 1
 * ```
 */
export class Timeline {
  #ring: CallRecord[] = [];
  /** Index of the oldest record once the ring is full. */
  #head = 0;
  #capacity: number;
  #dropped = 0;

  /** Keeps at most `capacity` records (default {@linkcode DEFAULT_TIMELINE_CAPACITY}). */
  constructor(capacity: number = DEFAULT_TIMELINE_CAPACITY) {
    this.#capacity = checkTimelineCapacity(capacity);
  }

  /** Records kept at most; setting it drops the oldest records beyond it. */
  get capacity(): number {
    return this.#capacity;
  }

  set capacity(n: number) {
    checkTimelineCapacity(n);
    const kept = this.records;
    const drop = Math.max(0, kept.length - n);
    this.#ring = kept.slice(drop);
    this.#head = 0;
    this.#dropped += drop;
    this.#capacity = n;
  }

  /** Records dropped so far to stay within the capacity. */
  get dropped(): number {
    return this.#dropped;
  }

  /** The records kept, oldest first (a copy). */
  get records(): CallRecord[] {
    return [...this.#ring.slice(this.#head), ...this.#ring.slice(0, this.#head)];
  }

  /** Adds one record, dropping the oldest when full. */
  add(r: CallRecord): void {
    if (this.#ring.length < this.#capacity) {
      this.#ring.push(r);
      return;
    }
    this.#dropped++;
    if (this.#capacity === 0) return;
    this.#ring[this.#head] = r;
    this.#head = (this.#head + 1) % this.#capacity;
  }

  /** Adds records gathered from another node. */
  merge(records: CallRecord[]): void {
    for (const r of records) this.add(r);
  }

  /** The records as Chrome trace events (`traceEvents`). */
  toChromeTrace(): ChromeTrace {
    const pids = new Map<string, number>();
    const events: Record<string, unknown>[] = [];
    const pid = (name: string) => {
      let id = pids.get(name);
      if (id === undefined) {
        id = pids.size + 1;
        pids.set(name, id);
        events.push({ name: "process_name", ph: "M", pid: id, tid: 0, args: { name } });
      }
      return id;
    };
    for (const r of this.records) {
      const args = { callId: r.callId, caller: r.caller, bytes: r.bytes, ok: r.ok };
      events.push({
        name: r.method,
        cat: "call",
        ph: "X",
        pid: pid(r.actor),
        tid: 0,
        ts: r.startMs * 1000,
        dur: Math.max(0, r.endMs - r.startMs) * 1000,
        args,
      });
      events.push({
        name: `submit ${r.method}`,
        cat: "submit",
        ph: "i",
        s: "t",
        pid: pid(r.caller),
        tid: 0,
        ts: r.submitMs * 1000,
        args: { ...args, actor: r.actor },
      });
    }
    return { traceEvents: events, displayTimeUnit: "ms" };
  }
}

/** Bytes held by typed arrays among `values` (top level and one level into arrays). */
export function typedBytes(values: unknown[]): number {
  let n = 0;
  for (const v of values) {
    if (ArrayBuffer.isView(v)) n += v.byteLength;
    else if (Array.isArray(v)) n += typedBytes(v);
  }
  return n;
}
