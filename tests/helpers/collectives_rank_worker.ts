/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * A rank running as its own Worker (as an actor does): it joins a group with
 * {@linkcode createCommunicator}, and on "go" starts an all-to-all, keeps its
 * thread busy in a synchronous loop, then waits for the result and reports
 * the times (epoch ms).
 *
 * @module
 */

import { createCommunicator } from "../../collectives/comm.ts";
import type { Communicator, GroupSpec } from "../../collectives/types.ts";

/** What the rank reports after "go". */
export interface RankTimes {
  issuedAt: number;
  busyEnd: number;
  doneAt: number;
}

const now = () => performance.timeOrigin + performance.now();
let comm: Communicator;

self.onmessage = async (e: MessageEvent) => {
  const m = e.data as { type: "join"; spec: GroupSpec } | {
    type: "go";
    partFloats: number;
    busyMs: number;
  };
  if (m.type === "join") {
    comm = await createCommunicator(m.spec);
    self.postMessage({ type: "joined" });
    return;
  }
  const issuedAt = now();
  const done = comm.alltoallv(
    Array.from({ length: comm.size }, () => new Float32Array(m.partFloats)),
  );
  let x = 0;
  while (now() < issuedAt + m.busyMs) x = Math.sin(x + 1); // synchronous compute
  const busyEnd = now();
  await done;
  self.postMessage(
    { type: "times", issuedAt, busyEnd, doneAt: now() } as RankTimes & { type: string },
  );
  await comm.close();
};
