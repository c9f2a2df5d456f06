/**
 * Times taken on different threads compare: each Worker's `nowMs()` starts
 * from its own time origin (two were seen 1 to 4 ms apart), so a
 * collective's completion on the communication thread is moved onto the
 * caller's clock, a link-model frame waits from its arrival on the
 * receiver's clock, and the overlap benchmark puts every rank's timed ops
 * on rank 0's clock.
 */
import { ok } from "node:assert/strict";
import { createCommunicator } from "../collectives/comm.ts";
import { meshPorts } from "../collectives/local.ts";
import { clockOffsetMs } from "../collectives/clock.ts";

async function pair(link?: { bandwidthBytesPerS: number; latencyS: number }) {
  const mesh = meshPorts(2);
  return await Promise.all(
    mesh.map((ports, rank) =>
      createCommunicator({ kind: "local", groupId: "clock", rank, size: 2, ports, link })
    ),
  );
}

Deno.test("clock: a collective's completion reads in the caller's clock, between issue and result", async () => {
  // From a Worker, as a rank creates its communication worker: there the two clocks differed.
  const w = new Worker(new URL("./helpers/clock_worker.ts", import.meta.url), { type: "module" });
  try {
    const { early, late } = await new Promise<{ early: number; late: number }>(
      (resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
        };
        w.postMessage(null);
      },
    );
    // Within the offset's error: half the shortest of 8 round trips between the threads.
    ok(early <= 0.3, `a completion read ${early} ms before its issue`);
    ok(late <= 0.3, `a completion read ${late} ms after its result was seen`);
  } finally {
    w.terminate();
  }
});

Deno.test("clock: ranks on one clock read no offset from each other", async () => {
  // Both ranks' proxies live on this thread: one clock, whatever their workers' origins.
  const comms = await pair({ bandwidthBytesPerS: 1e8, latencyS: 2e-4 });
  try {
    const offsets = await Promise.all(comms.map(clockOffsetMs));
    ok(offsets[0] === 0 && Math.abs(offsets[1]) < 0.5, `offsets ${offsets}`);
  } finally {
    await Promise.all(comms.map((c) => c.close()));
  }
});
