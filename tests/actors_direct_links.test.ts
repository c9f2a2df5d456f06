/**
 * Direct links between the nodes of a `nats` job on one host: messages keep
 * their order per (sender, receiver) across the switch from NATS to the link
 * and back, only nodes with the same host key and the same secret link up,
 * large messages cross a link whole, and forged control frames are counted
 * and dropped without harm.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { NatsBus, nodeSubject } from "../actors/bus_nats.ts";
import { decode, encode } from "../actors/codec.ts";
import type { Message } from "../actors/protocol.ts";
import { startNatsServer } from "../actors/nats_server.ts";

const SECRET = "a".repeat(64);
const JOB = "directjob";

/** Waits until `cond` holds, polling, or fails after `ms`. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Numbered messages as heartbeats: the incarnation field carries the number; `pad` bytes ride along. */
function numbered(from: string, n: number, pad = 0): Message {
  const msg = { type: "heartbeat" as const, actorId: from, incarnation: n };
  return pad > 0 ? Object.assign(msg, { pad: new Uint8Array(pad) }) : msg;
}

/** Records the numbers of the heartbeats a bus receives. */
function collect(bus: NatsBus): number[] {
  const got: number[] = [];
  bus.onMessage((m) => {
    if (m.type === "heartbeat") got.push(m.incarnation);
  });
  return got;
}

/** Sends `count` numbered messages from `a` to `to`, yielding to the event loop every `batch`. */
async function stream(a: NatsBus, to: string, first: number, count: number, batch = 50, pad = 0) {
  for (let i = first; i < first + count; i++) {
    a.send(to, numbered(a.address, i, pad));
    if (i % batch === batch - 1) await new Promise((r) => setTimeout(r, 0));
  }
}

const range = (first: number, count: number) => Array.from({ length: count }, (_, i) => first + i);

async function withServer(fn: (creds: Creds) => Promise<void>) {
  const server = await startNatsServer();
  try {
    await fn({ servers: [server.url], token: server.token });
  } finally {
    await server.stop();
  }
}

type Creds = { servers: string[]; token?: string };
const SAME_HOST = { secret: SECRET, host: "h" };

/** Opens bus "a" (host "h") and bus "b" (with `linksB`), runs `fn` on them, then closes both. */
async function withPair(
  creds: Creds,
  fn: (a: NatsBus, b: NatsBus) => Promise<void>,
  linksB: { secret: string; host: string } = SAME_HOST,
) {
  const a = await NatsBus.open(creds, JOB, "a", SAME_HOST);
  const b = await NatsBus.open(creds, JOB, "b", linksB);
  try {
    await fn(a, b);
  } finally {
    await a.close();
    await b.close();
  }
}

Deno.test("direct links: order holds across the switch from NATS to the link, both ways", async () => {
  await withServer((creds) =>
    withPair(creds, async (a, b) => {
      const atB = collect(b);
      const atA = collect(a);
      // 32 MiB over NATS at once, before the link is up: b is still reading
      // them when the small messages after them arrive on the link.
      await stream(a, "b", 0, 512, Infinity, 64 << 10);
      await stream(a, "b", 512, 4488);
      await until(() => atB.length === 5000, "5000 messages at b");
      deepEqual(atB, range(0, 5000));
      ok(a.direct!.sent > 0, "some messages took the link");
      ok(a.direct!.sent <= 4488, "the first ones went over NATS");
      deepEqual(a.direct!.linkedPeers, ["b"]);
      await until(() => b.direct!.received === a.direct!.sent, "b to read the link");
      // b connected to a, so its messages to a take the link from the first one.
      await stream(b, "a", 0, 300);
      await until(() => atA.length === 300, "300 messages at a");
      deepEqual(atA, range(0, 300));
      equal(b.direct!.sent, 300);
      equal(a.rejectedFrames + b.rejectedFrames, 0);
    })
  );
});

Deno.test("direct links: none between different hosts or different secrets; NATS carries all", async () => {
  await withServer(async (creds) => {
    for (
      const [hostB, secretB] of [["other-host", SECRET], ["h", "b".repeat(64)]] as const
    ) {
      await withPair(creds, async (a, b) => {
        const atB = collect(b);
        await stream(a, "b", 0, 1000);
        await until(() => atB.length === 1000, "1000 messages at b");
        deepEqual(atB, range(0, 1000));
        await new Promise((r) => setTimeout(r, 200)); // time for a handshake to fail
        equal(a.direct!.sent, 0);
        deepEqual(a.direct!.linkedPeers, []);
        deepEqual(b.direct!.linkedPeers, []);
        // A wrong secret is a refused handshake on both sides; another host is no attempt.
        equal(a.rejectedFrames + b.rejectedFrames, hostB === "h" ? 2 : 0);
      }, { secret: secretB, host: hostB });
    }
  });
});

Deno.test("direct links: an 8 MiB Float32Array crosses a link whole", async () => {
  await withServer((creds) =>
    withPair(creds, async (a, b) => {
      const got: Message[] = [];
      b.onMessage((m) => got.push(m));
      a.send("b", numbered("a", 0));
      await until(() => a.direct!.linkedPeers.length === 1, "the link");
      const value = Float32Array.from({ length: 2 << 20 }, (_, i) => i * 0.5);
      a.send("b", { type: "result", callId: "c1", ok: true, value, startMs: 1, endMs: 2 });
      await until(() => got.length === 2, "the large message");
      equal(a.direct!.sent, 1);
      const r = got[1] as Extract<Message, { type: "result" }>;
      ok(r.value instanceof Float32Array);
      deepEqual(r.value, value);
    })
  );
});

Deno.test("direct links: a peer that goes away is dropped, NATS carries on, a new peer links again", async () => {
  await withServer(async (creds) => {
    const a = await NatsBus.open(creds, JOB, "a", SAME_HOST);
    const b1 = await NatsBus.open(creds, JOB, "b", SAME_HOST);
    let b2: NatsBus | undefined;
    try {
      const at1 = collect(b1);
      await stream(a, "b", 0, 100);
      await until(() => at1.length === 100 && a.direct!.linkedPeers.length === 1, "first link");
      await b1.close();
      await until(() => a.direct!.linkedPeers.length === 0, "the link to be dropped");
      b2 = await NatsBus.open(creds, JOB, "b", SAME_HOST);
      const at2 = collect(b2);
      const sentBefore = a.direct!.sent;
      await stream(a, "b", 100, 2000);
      await until(() => at2.length === 2000, "2000 messages at the new b");
      deepEqual(at2, range(100, 2000));
      ok(a.direct!.sent > sentBefore, "a new link carried some of them");
      deepEqual(a.direct!.linkedPeers, ["b"]);
    } finally {
      await a.close();
      await b1.close();
      await b2?.close();
    }
  });
});

Deno.test("direct links: forged or malformed control frames are counted and dropped", async () => {
  await withServer(async (creds) => {
    const b = await NatsBus.open(creds, JOB, "b", SAME_HOST);
    const nc = await connect({ servers: creds.servers, token: creds.token });
    // A listener that takes connections and closes them: no handshake answer.
    const trap = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const trapping = (async () => {
      for await (const c of trap) c.close();
    })();
    try {
      const control = (kind: number, body: unknown) => {
        const payload = encode(body);
        const f = new Uint8Array(payload.byteLength + 1);
        f[0] = kind;
        f.set(payload, 1);
        return f;
      };
      const subject = nodeSubject(JOB, "b");
      nc.publish(subject, control(2, { from: "evil", host: "h", port: 0, nonce: "n" }));
      nc.publish(subject, control(2, { from: 7, host: "h", port: 1234, nonce: "n" }));
      nc.publish(subject, control(3, { from: "evil" }));
      nc.publish(subject, new Uint8Array([2, 0xc1, 0xc1]));
      const port = (trap.addr as Deno.NetAddr).port;
      nc.publish(subject, control(2, { from: "evil", host: "h", port, nonce: "n" }));
      await nc.flush();
      await until(() => b.rejectedFrames === 5, "5 rejected frames");
      deepEqual(b.direct!.linkedPeers, []);
      // The bus still works.
      const got = collect(b);
      const a = await NatsBus.open(creds, JOB, "a", SAME_HOST);
      await stream(a, "b", 0, 200);
      await until(() => got.length === 200, "200 messages");
      deepEqual(got, range(0, 200));
      await a.close();
    } finally {
      trap.close();
      await trapping.catch(() => {});
      await nc.close();
      await b.close();
    }
  });
});

/** A length-prefixed link frame. */
function linkFrame(payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(4 + payload.byteLength);
  new DataView(f.buffer).setUint32(0, payload.byteLength, true);
  f.set(payload, 4);
  return f;
}

Deno.test("direct links: closing does not wait on a linked peer that stopped reading", async () => {
  await withServer(async (creds) => {
    const a = await NatsBus.open(creds, JOB, "a", SAME_HOST);
    // "b" is played by hand: it answers a's HELLO with a valid handshake, then never reads.
    const nc = await connect({ servers: creds.servers, token: creds.token });
    const hello = new Promise<{ port: number; nonce: string }>((resolve) => {
      nc.subscribe(nodeSubject(JOB, "b"), {
        callback: (_e, m) => {
          if (m.data[0] === 2) {
            resolve(decode(m.data.subarray(1)) as { port: number; nonce: string });
          }
        },
      });
    });
    await nc.flush();
    let conn: Deno.TcpConn | undefined;
    try {
      a.send("b", numbered("a", 0));
      const { port, nonce } = await hello;
      const key = await crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(SECRET),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const text = `connect|a|b|l1|${nonce}`;
      const proof = new Uint8Array(
        await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)),
      );
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(linkFrame(encode({ from: "b", to: "a", link: "l1", nonce: "n", proof })));
      await until(() => a.direct!.linkedPeers.length === 1, "a to accept the link");
      // 64 MiB that nobody reads: the socket buffers fill and a's writes stay queued.
      for (let i = 0; i < 8; i++) {
        a.send("b", {
          type: "result",
          callId: `c${i}`,
          ok: true,
          value: new Uint8Array(8 << 20),
          startMs: 0,
          endMs: 0,
        });
      }
      const t0 = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        a.close().then(() => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), 10_000)),
      ]);
      clearTimeout(timer);
      ok(closed, "close returned");
      ok(performance.now() - t0 < 5_000, `close took ${performance.now() - t0} ms`);
    } finally {
      conn?.close();
      await nc.close();
      await a.close();
    }
  });
});
