/**
 * One rank of `bench cluster`, a process in a host namespace: joins a `nats`
 * group on its server (credentials from the environment, retrying until
 * the server answers), runs `warmup` all-to-alls of `partBytes` to each
 * peer, then times `reps` more, each after a barrier, checks what it got,
 * and prints `{"ms": [...], "ok": true}` on one line.
 *
 * Usage: `deno run -A bench/cluster_rank.ts URL JOB RANK SIZE PART_BYTES WARMUP REPS`
 *
 * @module
 */
import { createCommunicator } from "../collectives/comm.ts";
import { credentialsFromEnv } from "../collectives/nats_connect.ts";
import type { Communicator } from "../collectives/types.ts";

const [url, jobId] = Deno.args;
const [rank, size, partBytes, warmup, reps] = Deno.args.slice(2).map(Number);

async function join(): Promise<Communicator> {
  const giveUp = Date.now() + 15_000;
  while (true) {
    try {
      return await createCommunicator({
        kind: "nats",
        groupId: "cluster",
        rank,
        size,
        jobId,
        timeoutMs: 60_000,
        ...credentialsFromEnv([url]),
      });
    } catch (e) {
      if (Date.now() > giveUp) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const comm = await join();
const value = (src: number, dst: number) => src * 100 + dst;
/** Fresh parts for each call: an all-to-all hands its buffers over to the communication worker. */
const parts = () =>
  Array.from({ length: size }, (_, j) => new Int32Array(partBytes / 4).fill(value(rank, j)));
let ok = true;
const ms: number[] = [];
for (let i = 0; i < warmup + reps; i++) {
  const send = parts();
  await comm.barrier();
  const t0 = performance.now();
  const got = await comm.alltoallv(send);
  if (i >= warmup) ms.push(performance.now() - t0);
  ok &&= got.every((a, s) => a.length === partBytes / 4 && a.every((v) => v === value(s, rank)));
}
console.log(JSON.stringify({ ms, ok }));
await comm.close();
