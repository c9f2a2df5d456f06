/**
 * Timed ops of chosen steps as a Chrome trace (the JSON Perfetto and
 * `chrome://tracing` open): per rank one compute track (every op, and every
 * wait on a collective, named) and one communication track (every collective
 * in flight, named; collectives in flight at the same time go on extra
 * "communication" lanes so none hides another).
 *
 * @module
 */

import type { TimedOp } from "./overlap_report.ts";

/** The timed ops of one run (e.g. one step of one variant) on each rank. */
export interface TracedRun {
  /** Shown as the process name prefix, e.g. the variant. */
  name: string;
  /** Timed ops, by rank. */
  ranks: TimedOp[][];
}

/** One Chrome trace event (the fields used here). */
export interface TraceEvent {
  name: string;
  ph: "X" | "M";
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  args?: Record<string, unknown>;
}

/**
 * Assigns each of `ops` a lane so that ops on one lane never overlap in time
 * (first fit, in start order); returns the lane of each op, by index.
 *
 * @example
 * ```ts
 * import { lanes } from "./trace.ts";
 * const op = (startMs: number, endMs: number) =>
 *   ({ name: "x", kind: "comm" as const, phase: "fwd" as const, startMs, endMs });
 * lanes([op(0, 2), op(1, 3), op(2, 4)]); // [0, 1, 0]
 * ```
 */
export function lanes(ops: TimedOp[]): number[] {
  const order = ops.map((_, i) => i).sort((a, b) => ops[a].startMs - ops[b].startMs);
  const free: number[] = [];
  const lane = new Array<number>(ops.length);
  for (const i of order) {
    let l = free.findIndex((end) => end <= ops[i].startMs);
    if (l < 0) l = free.push(0) - 1;
    free[l] = ops[i].endMs;
    lane[i] = l;
  }
  return lane;
}

/**
 * The Chrome trace of `runs`: process `run * 100 + rank` per run and rank,
 * thread 0 "compute", threads 1.. "communication"; times in microseconds
 * from each run's first op.
 *
 * @example
 * ```ts
 * import { chromeTrace } from "./trace.ts";
 * const op = { name: "blocks.0.attn", kind: "op" as const, phase: "fwd" as const, startMs: 5, endMs: 7 };
 * const trace = chromeTrace([{ name: "scmoe-pos2", ranks: [[op]] }]);
 * trace.traceEvents.find((e) => e.ph === "X")?.dur; // 2000
 * ```
 */
export function chromeTrace(runs: TracedRun[]): { traceEvents: TraceEvent[] } {
  const events: TraceEvent[] = [];
  runs.forEach((run, r) => {
    const t0 = Math.min(...run.ranks.flat().map((o) => o.startMs));
    run.ranks.forEach((ops, rank) => {
      const pid = r * 100 + rank;
      const meta = (name: string, tid: number, args: Record<string, unknown>) =>
        events.push({ name, ph: "M", pid, tid, args });
      meta("process_name", 0, { name: `${run.name} rank ${rank}` });
      meta("process_sort_index", 0, { sort_index: pid });
      meta("thread_name", 0, { name: "compute" });
      const comm = ops.filter((o) => o.kind === "comm");
      const lane = lanes(comm);
      for (let l = 0; l <= Math.max(-1, ...lane); l++) {
        meta("thread_name", 1 + l, { name: l === 0 ? "communication" : `communication ${l + 1}` });
      }
      const x = (o: TimedOp, tid: number): TraceEvent => ({
        name: o.kind === "wait" ? `wait ${o.name}` : o.name,
        ph: "X",
        pid,
        tid,
        ts: (o.startMs - t0) * 1e3,
        dur: (o.endMs - o.startMs) * 1e3,
        cat: `${o.kind},${o.phase}`,
        args: o.bytes === undefined ? { phase: o.phase } : { phase: o.phase, bytes: o.bytes },
      });
      for (const o of ops) if (o.kind !== "comm") events.push(x(o, 0));
      comm.forEach((o, i) => events.push(x(o, 1 + lane[i])));
    });
  });
  return { traceEvents: events };
}

/**
 * The runs of a trace written by {@linkcode chromeTrace} (e.g. a saved
 * `overlap_trace.json`), for drawing it again: ops timed from each run's
 * first op, in ms; a wait's name without its `wait ` prefix.
 *
 * @example
 * ```ts
 * import { chromeTrace, fromChromeTrace } from "./trace.ts";
 * const op = { name: "blocks.0.attn", kind: "op" as const, phase: "fwd" as const, startMs: 5, endMs: 7 };
 * fromChromeTrace(chromeTrace([{ name: "top2", ranks: [[op]] }]))[0].ranks[0][0].endMs; // 2
 * ```
 */
export function fromChromeTrace(trace: { traceEvents: TraceEvent[] }): TracedRun[] {
  const names = new Map<number, string>();
  for (const e of trace.traceEvents) {
    if (e.ph === "M" && e.name === "process_name") {
      names.set(e.pid, String(e.args?.name ?? "").replace(/ rank \d+$/, ""));
    }
  }
  const runs = new Map<number, TimedOp[][]>();
  for (const e of trace.traceEvents) {
    if (e.ph !== "X") continue;
    const run = Math.floor(e.pid / 100), rank = e.pid % 100;
    if (!runs.has(run)) runs.set(run, []);
    const ranks = runs.get(run)!;
    while (ranks.length <= rank) ranks.push([]);
    const [kind, phase] = (e.cat ?? "op,fwd").split(",") as [TimedOp["kind"], TimedOp["phase"]];
    const startMs = (e.ts ?? 0) / 1e3;
    const bytes = e.args?.bytes;
    ranks[rank].push({
      name: kind === "wait" ? e.name.replace(/^wait /, "") : e.name,
      kind,
      phase,
      startMs,
      endMs: startMs + (e.dur ?? 0) / 1e3,
      ...(typeof bytes === "number" ? { bytes } : {}),
    });
  }
  return [...runs.entries()].sort(([a], [b]) => a - b).map(([run, ranks]) => ({
    name: names.get(run * 100) ?? `run ${run}`,
    ranks,
  }));
}
