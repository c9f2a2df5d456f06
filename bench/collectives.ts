/**
 * `deno task bench collectives [--json] [--quick]` ({@linkcode COLLECTIVES_COMMAND}): time, algbw and busbw of
 * the collectives (nccl-tests convention, see ANCHORS.md) over `local`
 * Workers and `nats`, with and without an emulated link, plus a plain
 * single-stream NATS publish/subscribe measured in the same run: a long
 * stream for context, and after each unshaped NATS all-to-all a stream of the
 * same bytes, so `pct_of_plain_pubsub` is the median of call-by-call ratios
 * taken under the same load (the machine is shared). After the plain stream
 * the same exchange runs on bare nats.js connections in Workers
 * (`raw_nats.ts`), and `pct_of_raw_nats` is what the transport and engine
 * cost over the client. Every rank runs on its own communication Worker; a
 * nats rank has its own connection, and all nats traffic crosses one
 * nats-server (the bound of every nats figure).
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import { createCommunicator } from "../collectives/comm.ts";
import { meshPorts } from "../collectives/local.ts";
import type { Communicator, LinkModel } from "../collectives/types.ts";
import { startNatsServer } from "../actors/nats_server.ts";
import { median } from "./output.ts";
import { type RawNatsGroup, startRawNatsGroup } from "./raw_nats.ts";
import { parseCommand, usage } from "../cli/flags.ts";
import { runCli } from "../cli/run.ts";
import { COLLECTIVES_COMMAND } from "./commands.ts";

const RANKS = 4;
/**
 * The shaped link of every rank: 10 MB/s (80 Mbit/s) and 0.1 ms. Its rate is
 * below what the one nats-server moves here (about 60 MB/s all told for
 * 1 MiB all-to-alls of 4 ranks on 2 cores, see the unshaped rows), so the
 * link, not the server, is the bottleneck the shaped figures measure; at
 * 25 MB/s per rank (100 MB/s through the server) the server was.
 */
const LINK: LinkModel = { bandwidthBytesPerS: 10e6, latencyS: 0.0001 };
const MAX_PAYLOAD = 8 << 20;

type Op = "alltoall" | "allreduce" | "allgather" | "reducescatter" | "broadcast";

/** busbw / algbw for `n` ranks (nccl-tests). */
const BUS_FACTOR: Record<Op, (n: number) => number> = {
  alltoall: (n) => (n - 1) / n,
  allgather: (n) => (n - 1) / n,
  reducescatter: (n) => (n - 1) / n,
  allreduce: (n) => (2 * (n - 1)) / n,
  broadcast: () => 1,
};

interface Row {
  bench: "collectives";
  case: string;
  metric: string;
  value: number;
  unit: string;
}

/**
 * Inputs of one call of `op` on every rank, `bytes` per rank (alltoall: send
 * buffer; allgather: output; allreduce, reducescatter, broadcast: input).
 * They are written once, as real inputs are, so that first-touch page faults
 * of fresh memory fall outside the clock.
 */
function inputs(n: number, op: Op, bytes: number): Float32Array[][] {
  const floats = Math.floor(bytes / 4 / n);
  const per = op === "alltoall" ? n : 1;
  const len = op === "allgather" || op === "alltoall" ? floats : floats * n;
  return Array.from(
    { length: n },
    () => Array.from({ length: per }, () => new Float32Array(len).fill(1)),
  );
}

/**
 * One call of `op` on every rank; resolves with the next call's inputs made
 * of this call's outputs, as a training loop reuses its buffers (a `local`
 * all-to-all then moves the same buffers round and round, with nothing for
 * the allocator and the garbage collector to do inside the clock).
 */
async function runOp(
  group: Communicator[],
  op: Op,
  input: Float32Array[][],
): Promise<Float32Array[][]> {
  return await Promise.all(group.map(async (c, r) => {
    if (op === "alltoall") return await c.alltoallv(input[r]);
    if (op === "allgather") return [(await c.allgather(input[r][0]))[r]];
    if (op === "reducescatter") return [await c.reduceScatter(input[r][0], "sum")];
    if (op === "broadcast") return [await c.broadcast(r === 0 ? input[r][0] : null, 0)];
    return [await c.allreduce(input[r][0], "sum")];
  }));
}

/**
 * Warm-up calls before each size is timed: up to this many, while they take
 * less than {@linkcode WARMUP_MS} in all (nccl-tests' `-w`). The code of a
 * collective runs slower until V8 has optimized it: a `local` all-to-all of
 * 4 ranks took about 2 ms a call over its first 60 calls and 0.65–0.7 ms from
 * the 100th on, at 1 KiB and at 8 MiB per peer alike.
 */
const WARMUP_CALLS = 20;
/** Time limit of the warm-up calls of one size (at least one call runs). */
const WARMUP_MS = 1000;
/**
 * Timed calls go on past the minimum while they have taken less than this
 * in all (with their paired references; a quarter of it with `--quick`),
 * up to {@linkcode MAX_TIMED_CALLS}: a call of a few milliseconds is mostly
 * thread wake-ups on 2 cores, and the median of 9 such calls moved by a
 * third from run to run (a `local` all-to-all of 8 MiB per peer: 1.56 and
 * 2.28 ms in two runs, against 1.2–1.85 ms in medians of 9 taken back to
 * back after 200 calls).
 */
const TIMED_MS = 1000;
/** The most timed calls of one size. */
const MAX_TIMED_CALLS = 100;

/**
 * Times in ms of at least `reps` calls after a warm-up ({@linkcode WARMUP_CALLS}),
 * more while all of them have taken less than `timedMs` (see
 * {@linkcode TIMED_MS}); inputs are made before the clock starts. `paired`,
 * when given, runs right after each call (outside its clock, once in the
 * warm-up too) and its results come back, so that references measured under
 * the same load as each call can be compared call by call.
 */
async function timeOp<T>(
  group: Communicator[],
  op: Op,
  bytes: number,
  reps: number,
  timedMs: number,
  paired?: () => Promise<T>,
): Promise<{ ms: number[]; paired: T[] }> {
  // A reduce-scatter's outputs are 1/n of its inputs: it gets fresh inputs, outside the clock.
  const next = (outputs: Float32Array[][]) =>
    op === "reducescatter" ? inputs(group.length, op, bytes) : outputs;
  let input = inputs(group.length, op, bytes);
  const warmupStart = performance.now();
  for (let i = 0; i < WARMUP_CALLS && performance.now() - warmupStart < WARMUP_MS; i++) {
    input = next(await runOp(group, op, input));
  }
  await paired?.();
  const out = { ms: [] as number[], paired: [] as T[] };
  const timedStart = performance.now();
  for (
    let i = 0;
    i < reps || (i < MAX_TIMED_CALLS && performance.now() - timedStart < timedMs);
    i++
  ) {
    await Promise.all(group.map((c) => c.barrier()));
    const t0 = performance.now();
    const outputs = await runOp(group, op, input);
    out.ms.push(performance.now() - t0);
    input = next(outputs);
    if (paired) out.paired.push(await paired());
  }
  return out;
}

function localGroup(link?: LinkModel): Promise<Communicator[]> {
  return Promise.all(
    meshPorts(RANKS).map((ports, rank) =>
      createCommunicator({ kind: "local", groupId: "bench", rank, size: RANKS, ports, link })
    ),
  );
}

function natsGroup(url: string, link?: LinkModel): Promise<Communicator[]> {
  const jobId = crypto.randomUUID();
  return Promise.all(Array.from({ length: RANKS }, (_, rank) =>
    createCommunicator({
      kind: "nats",
      groupId: "bench",
      rank,
      size: RANKS,
      servers: [url],
      jobId,
      maxPayload: MAX_PAYLOAD,
      link,
    })));
}

/** MB/s of one publisher streaming `total` bytes in `msgBytes` messages to one subscriber. */
async function plainPubSub(url: string, total: number, msgBytes: number): Promise<number> {
  const [pub, sub] = await Promise.all([connect({ servers: [url] }), connect({ servers: [url] })]);
  const count = Math.ceil(total / msgBytes);
  let got = 0;
  let t0 = 0;
  const done = new Promise<number>((resolve) => {
    sub.subscribe("plain", {
      callback: () => {
        if (++got === count) resolve(performance.now() - t0);
      },
    });
  });
  await sub.flush();
  const payload = new Uint8Array(msgBytes).fill(1);
  t0 = performance.now();
  for (let i = 0; i < count; i++) {
    pub.publish("plain", payload);
    if (i % 16 === 15) await pub.flush();
  }
  const ms = await done;
  await Promise.all([pub.close(), sub.close()]);
  return (count * msgBytes) / ms / 1e3;
}

/**
 * Runs the benchmark; see the module doc for the flags; `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runCollectivesBench(args: string[]): Promise<void> {
  const f = parseCommand(COLLECTIVES_COMMAND, args);
  if (f.help) return console.log(usage(COLLECTIVES_COMMAND));
  const json = f.has("json"), quick = f.has("quick");
  const sizes = quick
    ? [64 << 10, 1 << 20, 8 << 20]
    : [4 << 10, 64 << 10, 1 << 20, 8 << 20, 32 << 20];
  // The zero-copy target is for 8 MiB to each peer: RANKS * 8 MiB per rank.
  const perPeerTarget = RANKS * (8 << 20);
  const sizesOf = (transport: string, op: Op, shaped: boolean) =>
    shaped
      ? (quick ? [1 << 20] : [1 << 20, 8 << 20])
      : transport === "local" && op === "alltoall" && !sizes.includes(perPeerTarget)
      ? [...sizes, perPeerTarget]
      : sizes;
  const ops: Op[] = ["alltoall", "allreduce", "allgather", "reducescatter", "broadcast"];
  const reps = quick ? 5 : 9;
  const timedMs = quick ? TIMED_MS / 4 : TIMED_MS;
  const rows: Row[] = [];
  const emit = (c: string, metric: string, value: number, unit: string) => {
    const row: Row = { bench: "collectives", case: c, metric, value: +value.toFixed(3), unit };
    rows.push(row);
    if (json) console.log(JSON.stringify(row));
  };

  const server = await startNatsServer({ maxPayload: MAX_PAYLOAD, token: null });
  let raw: RawNatsGroup | undefined;
  try {
    raw = await startRawNatsGroup(server.url, RANKS);
    const streams = [];
    for (let i = 0; i < 3; i++) {
      streams.push(await plainPubSub(server.url, quick ? 64 << 20 : 256 << 20, 1 << 20));
    }
    emit("nats/pubsub/1048576/unshaped", "plain_pubsub_mb_per_s", median(streams), "MB/s");
    for (const transport of ["local", "nats"] as const) {
      for (const shaped of [false, true]) {
        const link = shaped ? LINK : undefined;
        const group = transport === "local"
          ? await localGroup(link)
          : await natsGroup(server.url, link);
        for (const op of ops) {
          for (const bytes of sizesOf(transport, op, shaped)) {
            // All ranks' bytes cross the one server: (RANKS - 1) * bytes per all-to-all.
            const crossing = (RANKS - 1) * bytes;
            const pairPlain = transport === "nats" && !shaped && op === "alltoall";
            const t = await timeOp(
              group,
              op,
              bytes,
              reps,
              timedMs,
              pairPlain
                ? async () => ({
                  plain: await plainPubSub(server.url, crossing, Math.min(crossing, 1 << 20)),
                  rawMs: (await raw!.alltoall(bytes / RANKS)).ms,
                })
                : undefined,
            );
            const ms = median(t.ms);
            const c = `${transport}/${op}/${bytes}/${shaped ? "shaped" : "unshaped"}`;
            const algbw = bytes / ms / 1e3;
            const busbw = algbw * BUS_FACTOR[op](RANKS);
            emit(c, "time_ms", ms, "ms");
            emit(c, "timed_calls", t.ms.length, "calls");
            emit(c, "algbw_mb_per_s", algbw, "MB/s");
            emit(c, "busbw_mb_per_s", busbw, "MB/s");
            if (op === "alltoall") emit(c, "bytes_per_peer", bytes / RANKS, "B");
            if (shaped) {
              emit(c, "busbw_pct_of_link", (busbw / (LINK.bandwidthBytesPerS / 1e6)) * 100, "%");
            }
            if (pairPlain) {
              // Each call against a plain stream of the same bytes and the raw exchange run after it.
              const pct = t.ms.map((m, i) => (crossing / m / 1e3 / t.paired[i].plain) * 100);
              emit(c, "pct_of_plain_pubsub", median(pct), "%");
              emit(c, "plain_pubsub_mb_per_s", median(t.paired.map((p) => p.plain)), "MB/s");
              emit(c, "raw_nats_ms", median(t.paired.map((p) => p.rawMs)), "ms");
              emit(
                c,
                "pct_of_raw_nats",
                median(t.ms.map((m, i) => t.paired[i].rawMs / m * 100)),
                "%",
              );
            }
          }
        }
        await Promise.all(group.map((g) => g.close()));
      }
    }
  } finally {
    await raw?.close();
    await server.stop();
  }
  if (!json) printTable(rows);
}

function printTable(rows: Row[]): void {
  const byCase = new Map<string, Map<string, number>>();
  for (const r of rows) {
    if (!byCase.has(r.case)) byCase.set(r.case, new Map());
    byCase.get(r.case)!.set(r.metric, r.value);
  }
  const cols = [
    "time_ms",
    "bytes_per_peer",
    "algbw_mb_per_s",
    "busbw_mb_per_s",
    "busbw_pct_of_link",
    "pct_of_plain_pubsub",
    "plain_pubsub_mb_per_s",
    "raw_nats_ms",
    "pct_of_raw_nats",
  ];
  console.log(
    `collectives, ${RANKS} ranks; shaped = link model ${
      LINK.bandwidthBytesPerS / 1e6
    } MB/s egress per rank`,
  );
  console.log(["case".padEnd(36), ...cols.map((c) => c.padStart(22))].join(""));
  for (const [c, m] of byCase) {
    console.log(
      [c.padEnd(36), ...cols.map((k) => (m.has(k) ? String(m.get(k)) : "").padStart(22))].join(""),
    );
  }
}

if (import.meta.main) {
  await runCli(async (args) => {
    await runCollectivesBench(args);
    return 0;
  });
}
