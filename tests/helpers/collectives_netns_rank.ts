/**
 * One rank of the netns test, run as its own process inside a network
 * namespace: joins a `nats` group (retrying until the server answers), times
 * one all-to-all of `partBytes` to each peer after a barrier, checks what it
 * got and prints `{ "ms": ..., "ok": ... }` on one line.
 *
 * Usage: `deno run -A collectives_netns_rank.ts <url> <jobId> <rank> <size> <partBytes>`
 *
 * @module
 */

import { createCommunicator } from "../../collectives/comm.ts";
import type { Communicator } from "../../collectives/types.ts";

const [url, jobId] = Deno.args;
const [rank, size, partBytes] = Deno.args.slice(2).map(Number);

async function join(): Promise<Communicator> {
  const giveUp = Date.now() + 10_000;
  while (true) {
    try {
      return await createCommunicator({
        kind: "nats",
        groupId: "netns",
        rank,
        size,
        servers: [url],
        jobId,
        timeoutMs: 10_000,
      });
    } catch (e) {
      if (Date.now() > giveUp) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const comm = await join();
await comm.barrier();
const value = (src: number, dst: number) => src * 100 + dst;
const parts = Array.from(
  { length: size },
  (_, j) => new Int32Array(partBytes / 4).fill(value(rank, j)),
);
const t0 = performance.now();
const got = await comm.alltoallv(parts);
const ms = performance.now() - t0;
const ok = got.every((a, i) => a.length === partBytes / 4 && a.every((v) => v === value(i, rank)));
console.log(JSON.stringify({ ms, ok }));
await comm.close();
