/**
 * One rank of the `cut-host` fault, run as a process inside a host's network
 * namespace: joins a `nats` group of `--size` ranks, then every
 * {@linkcode SLOT_MS} all-reduces one number under the tag of the current
 * time slot (so ranks that lost touch line up again by the clock), and prints
 * one JSON line per slot: `{"slot":N,"ok":true}` or
 * `{"slot":N,"ok":false,"error":"..."}`. With `--budget-ms B` it stops with
 * a one-line `error:` and exit code 3 once no collective has succeeded for B
 * ms. The NATS token comes from `SCMOE_NATS_TOKEN`.
 *
 * Usage: `deno run -A tests/helpers/cut_host_rank.ts --nats URL --job ID --rank R --size N [--budget-ms B]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { credentialsFromEnv } from "../../collectives/nats_connect.ts";
import { createCommunicator } from "../../collectives/comm.ts";
import type { Communicator } from "../../collectives/types.ts";

/** Length of a time slot; each slot holds one all-reduce. */
const SLOT_MS = 500;

/** Deadline of each all-reduce (under a slot, so a failed one ends before the next slot). */
const COLLECTIVE_MS = 400;

const { values } = parseArgs({
  options: {
    nats: { type: "string" },
    job: { type: "string" },
    rank: { type: "string" },
    size: { type: "string" },
    "budget-ms": { type: "string", default: "Infinity" },
  },
  strict: true,
});
const [rank, size, budgetMs] = [values.rank, values.size, values["budget-ms"]].map(Number);

async function join(): Promise<Communicator> {
  const giveUp = Date.now() + 10_000;
  while (true) {
    try {
      return await createCommunicator({
        ...credentialsFromEnv([values.nats!]),
        kind: "nats",
        groupId: "cut-host",
        rank,
        size,
        jobId: values.job!,
        timeoutMs: COLLECTIVE_MS,
      });
    } catch (e) {
      if (Date.now() > giveUp) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const comm = await join();
let lastOk = Date.now();
let lastError = "";
while (Date.now() - lastOk <= budgetMs) {
  const slot = Math.floor(Date.now() / SLOT_MS) + 1;
  await new Promise((r) => setTimeout(r, slot * SLOT_MS - Date.now()));
  try {
    const [sum] = await comm.allreduce(Float32Array.of(rank + 1), "sum", { tag: `slot-${slot}` });
    if (sum !== size * (size + 1) / 2) throw new Error(`wrong sum ${sum}`);
    lastOk = Date.now();
    console.log(JSON.stringify({ slot, ok: true }));
  } catch (e) {
    lastError = (e as Error).message.split("\n")[0];
    console.log(JSON.stringify({ slot, ok: false, error: lastError }));
  }
}
console.error(
  `error: rank ${rank}: no collective succeeded for ${budgetMs} ms (last: ${lastError}); stopping`,
);
Deno.exit(3);
