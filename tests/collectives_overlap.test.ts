import { ok } from "node:assert/strict";
import { createCommunicator } from "../collectives/comm.ts";
import { meshPorts } from "../collectives/local.ts";
import type { RankTimes } from "./helpers/collectives_rank_worker.ts";

const now = () => performance.timeOrigin + performance.now();

function nextMessage(w: Worker): Promise<any> {
  return new Promise((resolve) =>
    w.addEventListener("message", (e) => resolve(e.data), { once: true })
  );
}

Deno.test("overlap: an all-to-all moves while the calling thread computes", async () => {
  const link = { bandwidthBytesPerS: 4e6, latencyS: 0.005 };
  const partFloats = 256 * 1024; // 1 MiB per peer: 262 ms + 5 ms on a 4 MB/s link
  const transferMs = (partFloats * 4 / link.bandwidthBytesPerS + link.latencyS) * 1e3;
  const busyMs = 500;
  const [p0, p1] = meshPorts(2);
  const worker = new Worker(new URL("./helpers/collectives_rank_worker.ts", import.meta.url), {
    type: "module",
  });
  try {
    const base = { kind: "local", groupId: "overlap", size: 2, link } as const;
    worker.postMessage({ type: "join", spec: { ...base, rank: 0, ports: p0 } }, [p0[1]!]);
    const [, me] = await Promise.all([
      nextMessage(worker),
      createCommunicator({ ...base, rank: 1, ports: p1 }),
    ]);
    const times = nextMessage(worker) as Promise<RankTimes>;
    worker.postMessage({ type: "go", partFloats, busyMs });
    const t0 = now();
    await me.alltoallv([new Float32Array(partFloats), new Float32Array(partFloats)]);
    const peerMs = now() - t0;
    const busy = await times;
    const busyRankMs = busy.doneAt - busy.issuedAt;
    console.log(
      `link transfer ${transferMs.toFixed(0)} ms; idle rank done after ${peerMs.toFixed(0)} ms; ` +
        `busy rank (${busyMs} ms compute) done after ${busyRankMs.toFixed(0)} ms ` +
        `(${(busy.doneAt - busy.busyEnd).toFixed(1)} ms after its compute)`,
    );
    // The busy rank's bytes left during its compute: the idle rank finished in about the transfer time.
    ok(peerMs > transferMs * 0.9 && peerMs < transferMs + 150, `idle rank took ${peerMs} ms`);
    // The busy rank waits for max(compute, transfer), not their sum.
    ok(busyRankMs < busyMs + 100, `busy rank took ${busyRankMs} ms`);
    await me.close();
  } finally {
    worker.terminate();
  }
});
