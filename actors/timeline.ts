/**
 * A record of every remote call, written as Chrome trace JSON (opens in
 * Perfetto and chrome://tracing): one track per actor for execution, one per
 * caller for submissions.
 *
 * @module
 */

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

/** Collects call records in memory. */
export class Timeline {
  readonly records: CallRecord[] = [];

  /** Adds one record. */
  add(r: CallRecord): void {
    this.records.push(r);
  }

  /** Adds records gathered from another node. */
  merge(records: CallRecord[]): void {
    this.records.push(...records);
  }

  /** The records as Chrome trace events (`traceEvents`). */
  toChromeTrace(): { traceEvents: Record<string, unknown>[]; displayTimeUnit: string } {
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
