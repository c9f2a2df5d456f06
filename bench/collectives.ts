/**
 * `deno task bench collectives [--json] [--quick]`: time, algbw and busbw of
 * the collectives (nccl-tests convention, see ANCHORS.md) over `local`
 * Workers and `nats`, with and without an emulated link, plus a plain
 * single-stream NATS publish/subscribe measured in the same run. Every rank
 * runs on its own communication Worker; a nats rank has its own connection,
 * and all nats traffic crosses one nats-server (the bound of every nats figure).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connect } from "@nats-io/transport-node";
import { createCommunicator } from "../collectives/comm.ts";
import { meshPorts } from "../collectives/local.ts";
import type { Communicator, LinkModel } from "../collectives/types.ts";
import { startNatsServer } from "../actors/nats_server.ts";

const RANKS = 4;
const LINK: LinkModel = { bandwidthBytesPerS: 25e6, latencyS: 0.0001 };
const MAX_PAYLOAD = 8 << 20;

type Op = "alltoall" | "allreduce" | "allgather";

/** busbw / algbw for `n` ranks (nccl-tests). */
const BUS_FACTOR: Record<Op, (n: number) => number> = {
  alltoall: (n) => (n - 1) / n,
  allgather: (n) => (n - 1) / n,
  allreduce: (n) => (2 * (n - 1)) / n,
};

interface Row {
  bench: "collectives";
  case: string;
  metric: string;
  value: number;
  unit: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Inputs of one call of `op` on every rank, `bytes` per rank (alltoall: send buffer; allgather: output). */
function inputs(n: number, op: Op, bytes: number): Float32Array[][] {
  const floats = Math.floor(bytes / 4 / n);
  const per = op === "alltoall" ? n : 1;
  const len = op === "allreduce" ? floats * n : floats;
  return Array.from({ length: n }, () => Array.from({ length: per }, () => new Float32Array(len)));
}

/** One call of `op` on every rank. */
function runOp(group: Communicator[], op: Op, input: Float32Array[][]): Promise<unknown> {
  return Promise.all(group.map((c, r) => {
    if (op === "alltoall") return c.alltoallv(input[r]);
    if (op === "allgather") return c.allgather(input[r][0]);
    return c.allreduce(input[r][0], "sum");
  }));
}

/** Median time of `reps` calls; inputs are made before the clock starts. */
async function timeOp(group: Communicator[], op: Op, bytes: number, reps: number) {
  await runOp(group, op, inputs(group.length, op, bytes)); // warm-up
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const input = inputs(group.length, op, bytes);
    await Promise.all(group.map((c) => c.barrier()));
    const t0 = performance.now();
    await runOp(group, op, input);
    ms.push(performance.now() - t0);
  }
  return median(ms);
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
  const payload = new Uint8Array(msgBytes);
  t0 = performance.now();
  for (let i = 0; i < count; i++) {
    pub.publish("plain", payload);
    if (i % 16 === 15) await pub.flush();
  }
  const ms = await done;
  await Promise.all([pub.close(), sub.close()]);
  return (count * msgBytes) / ms / 1e3;
}

/** Runs the benchmark; see the module doc for the flags. */
export async function runCollectivesBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { json: { type: "boolean" }, quick: { type: "boolean" } },
  });
  const quick = values.quick ?? false;
  const sizes = quick
    ? [64 << 10, 1 << 20, 8 << 20]
    : [4 << 10, 64 << 10, 1 << 20, 8 << 20, 32 << 20];
  const shapedSizes = quick ? [1 << 20] : [1 << 20, 8 << 20];
  const ops: Op[] = ["alltoall", "allreduce", "allgather"];
  const reps = quick ? 3 : 7;
  const rows: Row[] = [];
  const emit = (c: string, metric: string, value: number, unit: string) => {
    const row: Row = { bench: "collectives", case: c, metric, value: +value.toFixed(3), unit };
    rows.push(row);
    if (values.json) console.log(JSON.stringify(row));
  };

  const server = await startNatsServer({ maxPayload: MAX_PAYLOAD, token: null });
  try {
    const plain = await plainPubSub(server.url, quick ? 64 << 20 : 256 << 20, 1 << 20);
    emit("nats/pubsub/1048576/unshaped", "plain_pubsub_mb_per_s", plain, "MB/s");
    for (const transport of ["local", "nats"] as const) {
      for (const shaped of [false, true]) {
        const link = shaped ? LINK : undefined;
        const group = transport === "local"
          ? await localGroup(link)
          : await natsGroup(server.url, link);
        for (const op of ops) {
          for (const bytes of shaped ? shapedSizes : sizes) {
            const ms = await timeOp(group, op, bytes, reps);
            const c = `${transport}/${op}/${bytes}/${shaped ? "shaped" : "unshaped"}`;
            const algbw = bytes / ms / 1e3;
            const busbw = algbw * BUS_FACTOR[op](RANKS);
            emit(c, "time_ms", ms, "ms");
            emit(c, "algbw_mb_per_s", algbw, "MB/s");
            emit(c, "busbw_mb_per_s", busbw, "MB/s");
            if (shaped) {
              emit(c, "busbw_pct_of_link", (busbw / (LINK.bandwidthBytesPerS / 1e6)) * 100, "%");
            }
            if (transport === "nats" && !shaped && op === "alltoall") {
              // All ranks' bytes cross the one server: compare its aggregate throughput.
              emit(c, "pct_of_plain_pubsub", ((busbw * RANKS) / plain) * 100, "%");
            }
          }
        }
        await Promise.all(group.map((g) => g.close()));
      }
    }
  } finally {
    await server.stop();
  }
  if (!values.json) printTable(rows);
}

function printTable(rows: Row[]): void {
  const byCase = new Map<string, Map<string, number>>();
  for (const r of rows) {
    if (!byCase.has(r.case)) byCase.set(r.case, new Map());
    byCase.get(r.case)!.set(r.metric, r.value);
  }
  const cols = [
    "time_ms",
    "algbw_mb_per_s",
    "busbw_mb_per_s",
    "busbw_pct_of_link",
    "pct_of_plain_pubsub",
    "plain_pubsub_mb_per_s",
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

if (import.meta.main) await runCollectivesBench(Deno.args);
