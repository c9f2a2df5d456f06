/**
 * Garbage published on a job's subjects by an independent NATS client is
 * counted and dropped; the job keeps computing correct results.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { encode } from "../actors/codec.ts";
import {
  get,
  init,
  jobId,
  natsCredentials,
  remote,
  runtimeStats,
  shutdown,
} from "../actors/mod.ts";
import type { Counter } from "./fixtures/actors.ts";

const CounterActor = remote<typeof Counter>(
  new URL("./fixtures/actors.ts", import.meta.url),
  "Counter",
);

function randomFrame(i: number): Uint8Array {
  const kinds = [
    () => crypto.getRandomValues(new Uint8Array(1 + (i % 300))), // random bytes
    () => new Uint8Array(0), // empty
    () => Uint8Array.of(1, 0, 0, 0, 1, 2, 3), // truncated chunk header
    () => Uint8Array.of(0, ...encode({ type: "result", callId: 7 })), // wrong field types
    () => Uint8Array.of(0, ...encode({ type: "nonsense" })), // unknown type
    () => Uint8Array.of(0, ...encode([1, 2, 3])), // not an object
    () => { // a chunk claiming a huge message
      const f = new Uint8Array(24);
      const v = new DataView(f.buffer);
      f[0] = 1;
      v.setUint32(12, 0, true);
      v.setUint32(16, 0xffffffff, true);
      return f;
    },
  ];
  return kinds[i % kinds.length]();
}

Deno.test("malformed frames on the job's subjects are dropped and counted", async () => {
  await init({ cluster: "nats" });
  try {
    const c = await CounterActor.remote(0);
    const stats = runtimeStats();
    // An insider with the job's credentials publishes garbage on the job's subjects.
    const nc = await connect(natsCredentials());
    const refs = [];
    for (let i = 0; i < 2000; i++) {
      nc.publish(`scmoe.${jobId()}.${i % 2 ? "driver" : c.actorId}`, randomFrame(i));
      if (i % 100 === 0) refs.push(c.add(1));
    }
    await nc.flush();
    await nc.close();
    const values = await get(refs);
    assert.deepEqual(values, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(await c.get(), 20);
    const after = runtimeStats();
    assert.equal(
      after.rejectedFrames - stats.rejectedFrames,
      1000,
      "every bad frame sent to the driver was counted",
    );
  } finally {
    await shutdown();
  }
});
