/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * One rank of {@linkcode startRawNatsGroup} (`raw_nats.ts`): a bare nats.js
 * connection on its own Worker, with none of the `nats` transport's framing,
 * rendezvous or flow control.
 *
 * @module
 */

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { MAX_CHUNK_BYTES } from "../collectives/nats.ts";
import type { RawNatsReply, RawNatsRequest } from "./raw_nats.ts";

let nc: NatsConnection | undefined;
let subjects: string[] = [];
let rank = 0;
/** Chunks and bytes received since the start, and the chunk count the current exchange completes at. */
let received = 0;
let receivedBytes = 0;
let target = 0;
let complete: (() => void) | undefined;
/** What every exchange sends to each peer, made once per size (the transport's inputs are reused too). */
let data = new Uint8Array(0);

function reply(m: RawNatsReply): void {
  self.postMessage(m);
}

self.onmessage = async (e: MessageEvent<RawNatsRequest>) => {
  const m = e.data;
  try {
    if (m.type === "init") {
      rank = m.rank;
      subjects = m.subjects;
      nc = await connect({ servers: [m.url] });
      // Each chunk is copied out of the client's read buffer, as the transport copies into its message.
      const inbox = new Uint8Array(MAX_CHUNK_BYTES);
      nc.subscribe(subjects[rank], {
        callback: (_err, msg) => {
          inbox.set(msg.data.subarray(0, inbox.length));
          receivedBytes += msg.data.length;
          if (++received === target) complete?.();
        },
      });
      await nc.flush();
      reply({ type: "ready" });
    } else if (m.type === "exchange") {
      // Counted from the start: a fast peer's chunks may arrive before this request.
      const perPeer = m.bytesPerPeer, chunks = Math.ceil(perPeer / MAX_CHUNK_BYTES);
      target += (subjects.length - 1) * chunks;
      const done = received >= target
        ? Promise.resolve()
        : new Promise<void>((resolve) => complete = resolve);
      if (data.length !== perPeer) data = new Uint8Array(perPeer).fill(1);
      for (let dst = 0; dst < subjects.length; dst++) {
        if (dst === rank) continue;
        for (let o = 0; o < perPeer; o += MAX_CHUNK_BYTES) {
          nc!.publish(subjects[dst], data.subarray(o, o + MAX_CHUNK_BYTES));
        }
      }
      await done;
      reply({ type: "done", receivedBytes });
    } else {
      await nc?.close();
      reply({ type: "closed" });
    }
  } catch (err) {
    reply({ type: "error", message: String(err) });
  }
};
