/**
 * `deno run -A local_alltoall_loop.ts CALLS BYTES_PER_PEER...`: a `local`
 * group of 4 ranks runs CALLS all-to-alls of each BYTES_PER_PEER in turn to
 * each peer, the buffers moving round and round as in `bench collectives`;
 * prints "done".
 */
import { createCommunicator } from "../../collectives/comm.ts";
import { meshPorts } from "../../collectives/local.ts";

const RANKS = 4;
const [calls, ...sizes] = Deno.args.map(Number);
const group = await Promise.all(
  meshPorts(RANKS).map((ports, rank) =>
    createCommunicator({ kind: "local", groupId: "gc", rank, size: RANKS, ports })
  ),
);
for (const perPeer of sizes) {
  let parts = group.map(() =>
    Array.from({ length: RANKS }, () => new Float32Array(perPeer / 4).fill(1))
  );
  for (let i = 0; i < calls; i++) {
    parts = await Promise.all(group.map((c, r) => c.alltoallv(parts[r])));
  }
}
await Promise.all(group.map((c) => c.close()));
console.log("done");
