/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * One expert-parallel rank for overlap measurements, as a plain Worker: it
 * joins a `local` group through its own communication worker (the
 * communication stream) and runs the cases it is sent (`overlap_cases.ts`).
 * Spoken to by `overlap.ts`.
 *
 * @module
 */
import { createCommunicator } from "../collectives/comm.ts";
import type { Communicator, LocalGroupSpec } from "../collectives/types.ts";
import { type BackendName, setupBackend } from "../models/backend.ts";
import type { RankMessage, RankRequest } from "./overlap.ts";
import { runCases } from "./overlap_cases.ts";

let comm: Communicator | undefined;
/** The group that sums dense gradients, when not `comm`. */
let gradComm: Communicator | undefined;

function reply(m: RankMessage): void {
  self.postMessage(m);
}

self.onmessage = async (e: MessageEvent<RankRequest>) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      await setupBackend(m.backend as BackendName);
      comm = await createCommunicator(m.spec as LocalGroupSpec);
      if (m.gradSpec) gradComm = await createCommunicator(m.gradSpec);
      reply({ type: "ready" });
    } else if (m.type === "run") {
      reply({
        type: "results",
        results: await runCases(m.cases, m.interleave ?? false, comm!, gradComm),
      });
    } else {
      await comm?.close();
      await gradComm?.close();
      reply({ type: "closed" });
      self.close();
    }
  } catch (err) {
    reply({
      type: "error",
      message: err instanceof Error ? err.stack ?? err.message : String(err),
    });
  }
};
