import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { createCommunicator } from "../collectives/comm.ts";
import { CollectiveTimeoutError, PeerDiedError } from "../collectives/errors.ts";
import { decodeFrame, frameHeaders, headerBytes } from "../collectives/frame.ts";
import { Engine } from "../collectives/engine.ts";
import { NatsTransport, subjectOf } from "../collectives/nats.ts";
import type { NatsGroupSpec } from "../collectives/types.ts";
import {
  checkAllOps,
  checkConcurrentTags,
  checkOrderAndP2p,
  onAll,
} from "./helpers/collectives_suite.ts";
import { startNatsServer } from "../actors/nats_server.ts";

const MAX_PAYLOAD = 64 * 1024;

type Extra = Partial<Pick<NatsGroupSpec, "jitterMs" | "timeoutMs" | "maxInflightBytes" | "jobId">>;

async function withServer(
  fn: (
    group: (n: number, extra?: Extra) => ReturnType<typeof natsGroup>,
    url: string,
  ) => Promise<void>,
  maxPending?: number,
) {
  const server = await startNatsServer({ maxPayload: MAX_PAYLOAD, token: "s3cret", maxPending });
  const open: { close(): Promise<void> }[] = [];
  try {
    await fn(async (n, extra) => {
      const g = await natsGroup(server.url, n, extra);
      open.push(...g);
      return g;
    }, server.url);
  } finally {
    await Promise.all(open.map((c) => c.close()));
    await server.stop();
  }
}

function natsGroup(url: string, n: number, extra: Extra = {}) {
  const jobId = extra.jobId ?? crypto.randomUUID();
  return Promise.all(Array.from({ length: n }, (_, rank) =>
    createCommunicator({
      kind: "nats",
      groupId: "g.1",
      rank,
      size: n,
      servers: [url],
      token: "s3cret",
      jobId,
      maxPayload: MAX_PAYLOAD,
      ...extra,
    })));
}

Deno.test("nats: every op against its reference, 1 to 5 ranks, messages over max_payload", async () => {
  await withServer(async (group) => {
    for (let n = 1; n <= 5; n++) {
      const g = await group(n);
      await checkAllOps(g, n === 3 ? 40_000 : 0); // 160 KB arrays: three chunks each
      await checkConcurrentTags(g);
      await checkOrderAndP2p(g);
    }
  });
});

Deno.test("nats: random delivery delays and chunked messages on concurrent tags", async () => {
  await withServer(async (group) => {
    const g = await group(4, { jitterMs: 4 });
    await checkAllOps(g, 20_000);
    await checkConcurrentTags(g);
  });
});

/**
 * Sends 16 MiB from a rank on a comm worker to a receiver on this thread,
 * whose socket is not read while the thread is blocked for 1.5 s, through a
 * server that cuts off a consumer with over 192 KiB pending. Once a
 * consumer's pending bytes pass half that limit, nats-server stalls the
 * producer for up to a second, then queues its next message; a chunk is
 * 127 KiB, over half the limit, so that next message overshoots it unless
 * the bytes in flight are bounded. Resolves with what the receiver got.
 */
async function toBusyReceiver(maxInflightBytes: number, timeoutMs: number) {
  const maxPayload = 128 << 10;
  const server = await startNatsServer({ maxPayload, token: "s3cret", maxPending: 192 << 10 });
  const spec: Omit<NatsGroupSpec, "rank"> = {
    kind: "nats",
    groupId: "fc",
    size: 2,
    servers: [server.url],
    token: "s3cret",
    jobId: crypto.randomUUID(),
    maxPayload,
    maxInflightBytes,
    timeoutMs,
  };
  const [sender, receiver] = await Promise.all([
    createCommunicator({ ...spec, rank: 0 }),
    NatsTransport.connect({ ...spec, rank: 1 }).then((t) => new Engine(t, spec)),
  ]);
  try {
    await Promise.all([sender.barrier(), receiver.barrier()]);
    const sent = sender.send(1, new Float32Array(4 << 20).fill(1.5), { tag: "big" });
    sent.catch(() => {}); // its outcome is the receiver's
    const until = performance.now() + 1500;
    while (performance.now() < until) { /* blocked, as by a synchronous kernel */ }
    return await receiver.recv(0, { tag: "big" });
  } finally {
    await Promise.all([sender.close(), receiver.close()]);
    await server.stop();
  }
}

Deno.test("nats: a bounded window keeps a blocked receiver from being cut off as a slow consumer", async () => {
  // 256 KiB asked, 4 chunks (508 KiB) granted: what is in flight fits the socket buffers.
  const got = await toBusyReceiver(256 << 10, 5000);
  equal(got.length, 4 << 20);
  ok(got.every((v) => v === 1.5));
  // Without the bound the server cuts the receiver off; its chunks are lost and the deadline fires.
  await rejects(toBusyReceiver(1 << 30, 1000), (e) => {
    ok(e instanceof CollectiveTimeoutError);
    equal(
      e.message,
      'recv (tag "big") on rank 1 timed out after 1000 ms; ranks that did not deliver: 0',
    );
    return true;
  });
});

Deno.test("nats: frames of another job and malformed frames are dropped and counted", async () => {
  await withServer(async (group, url) => {
    const jobId = crypto.randomUUID();
    const g = await group(2, { jobId });
    await onAll(g, (c) => c.barrier());
    const nc = await connect({ servers: [url], token: "s3cret" });
    const subject = subjectOf(jobId, "g.1", 1);
    const foreign = {
      k: 0,
      j: "another-job",
      g: "g.1",
      s: 0,
      t: "u:1",
      d: 0,
      n: 4,
      o: 0,
      r: 0,
    } as const;
    nc.publish(subject, new Uint8Array(4), { headers: frameHeaders(foreign) });
    nc.publish(subject, new Uint8Array([0, 0, 0, 9, 1, 2]));
    nc.publish(subject, new Uint8Array(4), {
      headers: frameHeaders({ ...foreign, j: jobId, s: 7 }),
    });
    await nc.flush();
    await nc.close();
    const sums = await onAll(g, (c) => c.allreduce(Int32Array.of(c.rank + 1), "sum"));
    deepEqual(sums.map((s) => [...s]), [[3], [3]]);
    deepEqual(await g[1].stats(), { droppedFrames: 3 });
  });
});

Deno.test("nats: deadline and peer death", async () => {
  await withServer(async (group) => {
    const g = await group(3, { timeoutMs: 150 });
    await rejects(g[2].allgather(Int32Array.of(1)), (e) => {
      ok(e instanceof CollectiveTimeoutError);
      equal(
        e.message,
        "allgather on rank 2 timed out after 150 ms; ranks that did not deliver: 0, 1",
      );
      return true;
    });
    const pending = g[0].broadcast(null, 1, { timeoutMs: 10_000 });
    g[0].markPeerDied(1);
    await rejects(pending, (e) => e instanceof PeerDiedError && e.message === "peer rank 1 died");
    deepEqual(await g[1].stats(), { droppedFrames: 0 });
  });
});

Deno.test("nats: a frame header's size is what nats.js puts on the wire; a message without one is not a frame", () => {
  const data = {
    k: 0,
    j: "job-ü",
    g: "g",
    s: 1,
    t: 'tag\n"quoted"',
    d: 0,
    n: 2 ** 40,
    o: 0,
    r: 1.5,
  } as const;
  for (const h of [data, { k: 1, j: "j", g: "g", s: 0, a: 7 } as const]) {
    const wire = (frameHeaders(h) as unknown as { encode(): Uint8Array }).encode();
    equal(headerBytes(h), wire.length);
    deepEqual(decodeFrame({ headers: frameHeaders(h), data: new Uint8Array(8) })?.header, h);
  }
  equal(decodeFrame({ data: new Uint8Array(8) }), null);
});
