/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * For `collectives_clock.test.ts`: two ranks' communicators created from a
 * Worker (as a rank actor creates its communication worker, nested), 30
 * all-reduces timed; replies with how far each completion (`doneAtMs`) fell
 * before its issue or after its result was seen, at most, in ms.
 */
import { createCommunicator } from "../../collectives/comm.ts";
import { meshPorts } from "../../collectives/local.ts";
import { nowMs } from "../../collectives/link.ts";

self.onmessage = async () => {
  const comms = await Promise.all(
    meshPorts(2).map((ports, rank) =>
      createCommunicator({ kind: "local", groupId: "clock", rank, size: 2, ports })
    ),
  );
  let early = -Infinity, late = -Infinity;
  for (let i = 0; i < 30; i++) {
    const timings = comms.map(() => ({} as { doneAtMs?: number }));
    const issued = nowMs();
    await Promise.all(
      comms.map((c, r) => c.allreduce(Float32Array.of(r), "sum", { timing: timings[r] })),
    );
    const seen = nowMs();
    for (const t of timings) {
      early = Math.max(early, issued - t.doneAtMs!);
      late = Math.max(late, t.doneAtMs! - seen);
    }
  }
  await Promise.all(comms.map((c) => c.close()));
  self.postMessage({ early, late });
};
