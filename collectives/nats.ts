/**
 * The `nats` transport: each rank has its own NATS connection and subscribes
 * to its own subject `scmoe.<job>.<group>.<rank>`. Messages larger than the
 * max payload are cut into chunks and pipelined; a sender keeps at most a
 * window of unacknowledged bytes in flight per peer, so a slow receiver is
 * never cut off by the server as a slow consumer. Messages to one peer leave
 * in order, so order per (source, destination, tag) holds.
 *
 * @module
 */

import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "./nats_connect.ts";
import {
  type DataHeader,
  decodeFrame,
  DTYPES,
  frameHeaders,
  type Header,
  headerBytes,
} from "./frame.ts";
import { BaseTransport } from "./transport.ts";
import type { Elem, NatsGroupSpec } from "./types.ts";

/**
 * Largest payload of one frame. nats.js grows its read buffer by doubling
 * while a message arrives, so bigger messages cost the receiver more copying
 * and fresh memory; messages are cut at this size even when the server's
 * max_payload allows more.
 */
export const MAX_CHUNK_BYTES = 1 << 20;

/** Bytes in flight to one peer before waiting for its acknowledgement, by default. */
export const DEFAULT_INFLIGHT_BYTES = 8 << 20;

const HELLO_EVERY_MS = 20;

/** A subject token made of safe characters only. */
function token(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}

/** The subject rank `rank` of the group listens on. */
export function subjectOf(jobId: string, groupId: string, rank: number): string {
  return `scmoe.${token(jobId)}.${token(groupId)}.${rank}`;
}

interface Partial {
  h: DataHeader;
  buf: Uint8Array;
  got: number;
}

/** Per-peer sending state: the queue of messages, bytes in flight, and whether it listens. */
class Peer {
  queue: Promise<void> = Promise.resolve();
  inflight = 0;
  up = false;
  acked = false;
  #wake: (() => void)[] = [];

  /**
   * Resolves once `cond()` holds, re-checked whenever {@linkcode Peer.notify}
   * is called; rejects with the signal's reason when it aborts first.
   */
  async until(cond: () => boolean, signal?: AbortSignal): Promise<void> {
    while (!cond()) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener("abort", wake);
          resolve();
        };
        this.#wake.push(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    }
  }

  /** Wakes every waiter to re-check its condition. */
  notify(): void {
    for (const w of this.#wake.splice(0)) w();
  }

  /**
   * Forgets what the peer acknowledged: after a reconnect, frames and acks
   * around the outage may be lost, so the rendezvous and the window restart.
   */
  reset(): void {
    this.inflight = 0;
    this.up = false;
    this.acked = false;
    this.notify();
  }
}

/**
 * One rank's end of a `nats` group.
 *
 * @example
 * ```ts ignore
 * import { NatsTransport } from "./nats.ts";
 * const servers = ["nats://127.0.0.1:4222"]; // a running nats-server
 * const spec = { kind: "nats", groupId: "g", size: 2, servers, jobId: "j" } as const;
 * const [a, b] = await Promise.all([0, 1].map((rank) => NatsTransport.connect({ ...spec, rank })));
 * await a.send(1, "t", Int32Array.of(7));
 * (await b.recv(0, "t"))[0]; // 7
 * ```
 */
export class NatsTransport extends BaseTransport {
  #nc: NatsConnection;
  #spec: NatsGroupSpec;
  #subjects: string[];
  #chunkBytes: number;
  #window: number;
  #peers: Peer[];
  #partial = new Map<number, Partial>();
  #unacked: number[];
  #hello?: ReturnType<typeof setInterval>;

  private constructor(nc: NatsConnection, spec: NatsGroupSpec) {
    super(spec.rank, spec.size, { link: spec.link, jitterMs: spec.jitterMs });
    this.#nc = nc;
    this.#spec = spec;
    this.#subjects = Array.from(
      { length: spec.size },
      (_, r) => subjectOf(spec.jobId, spec.groupId, r),
    );
    const maxPayload = Math.min(spec.maxPayload ?? Infinity, nc.info?.max_payload ?? 1 << 20);
    const probe: DataHeader = {
      k: 0,
      j: spec.jobId,
      g: spec.groupId,
      s: spec.rank,
      t: "",
      d: 0,
      n: 2 ** 40,
      o: 2 ** 40,
      r: Date.now() + 0.5,
    };
    // Room for the header of any tag up to 1 KiB; chunks stay 8-byte aligned.
    const room = Math.floor((maxPayload - headerBytes(probe) - 1024) / 8) * 8;
    this.#chunkBytes = Math.min(room, MAX_CHUNK_BYTES);
    if (this.#chunkBytes < 1024) throw new RangeError(`max payload ${maxPayload} is too small`);
    this.#window = Math.max(spec.maxInflightBytes ?? DEFAULT_INFLIGHT_BYTES, 4 * this.#chunkBytes);
    this.#peers = Array.from({ length: spec.size }, () => new Peer());
    this.#unacked = new Array(spec.size).fill(0);
  }

  /**
   * Connects, subscribes to this rank's subject and starts the rendezvous
   * (messages to a peer wait until that peer is known to be subscribed).
   */
  static async connect(spec: NatsGroupSpec): Promise<NatsTransport> {
    const nc = await connectNats(spec, `scmoe-${spec.jobId}-${spec.groupId}-${spec.rank}`);
    const t = new NatsTransport(nc, spec);
    nc.subscribe(subjectOf(spec.jobId, spec.groupId, spec.rank), {
      callback: (err, msg) => err ? undefined : t.#onFrame(msg),
    });
    await nc.flush();
    t.#startRendezvous();
    t.#watchReconnects();
    return t;
  }

  #startRendezvous(): void {
    clearInterval(this.#hello);
    this.#sayHello();
    this.#hello = setInterval(() => this.#sayHello(), HELLO_EVERY_MS);
  }

  /** After a reconnect, partial messages are dropped and the rendezvous and windows restart. */
  async #watchReconnects(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type !== "reconnect") continue;
      if (this.#partial.size > 0) this.drop();
      this.#partial.clear();
      this.#unacked.fill(0);
      for (const p of this.#peers) p.reset();
      this.#startRendezvous();
    }
  }

  protected transmit(dst: number, tag: string, data: Elem, readyAt: number, signal?: AbortSignal) {
    const peer = this.#peers[dst];
    const run = async () => {
      signal?.throwIfAborted();
      await peer.until(() => peer.up, signal);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const h: DataHeader = {
        k: 0,
        j: this.#spec.jobId,
        g: this.#spec.groupId,
        s: this.rank,
        t: tag,
        d: data instanceof Float32Array ? DTYPES.f32 : DTYPES.i32,
        n: bytes.length,
        o: 0,
        r: readyAt,
      };
      do {
        const chunk = bytes.subarray(h.o, h.o + this.#chunkBytes);
        await peer.until(
          () => peer.inflight === 0 || peer.inflight + chunk.length <= this.#window,
          signal,
        );
        peer.inflight += chunk.length;
        this.#publish(dst, h, chunk);
        h.o += chunk.length;
      } while (h.o < bytes.length);
    };
    const done = peer.queue.then(run);
    peer.queue = done.catch(() => {});
    return done;
  }

  /** Stops the rendezvous and closes the connection. */
  override async close(): Promise<void> {
    clearInterval(this.#hello);
    await super.close();
    await this.#nc.close();
  }

  /** Publishes one frame: the payload goes as it is, the header in the NATS headers. */
  #publish(dst: number, h: Header, payload?: Uint8Array): void {
    this.#nc.publish(this.#subjects[dst], payload, { headers: frameHeaders(h) });
  }

  #sayHello(): void {
    let pending = false;
    for (let dst = 0; dst < this.size; dst++) {
      if (dst === this.rank || this.#peers[dst].acked) continue;
      pending = true;
      this.#publish(dst, {
        k: 2,
        j: this.#spec.jobId,
        g: this.#spec.groupId,
        s: this.rank,
        y: false,
      });
    }
    if (!pending) clearInterval(this.#hello);
  }

  #onFrame(msg: Msg): void {
    const f = decodeFrame(msg);
    const h = f?.header;
    if (
      !f || !h || h.j !== this.#spec.jobId || h.g !== this.#spec.groupId ||
      h.s >= this.size || h.s === this.rank
    ) {
      return this.drop();
    }
    const peer = this.#peers[h.s];
    if (h.k === 2) {
      peer.up = true;
      if (h.y) peer.acked = true;
      else {
        // A hello starts the peer's rendezvous: it (re)connected and keeps no
        // count of our bytes, so frames lost in its outage stop holding credit.
        peer.inflight = 0;
        this.#publish(h.s, { k: 2, j: h.j, g: h.g, s: this.rank, y: true });
      }
      peer.notify();
    } else if (h.k === 1) {
      peer.inflight = Math.max(0, peer.inflight - h.a);
      peer.notify();
    } else this.#onData(h, f.payload);
  }

  #onData(h: DataHeader, payload: Uint8Array): void {
    const src = h.s;
    let p = this.#partial.get(src);
    if (h.o === 0) {
      if (p) this.drop(); // an unfinished message: its chunks were lost
      p = { h, buf: new Uint8Array(h.n), got: 0 };
      this.#partial.set(src, p);
    }
    if (!p || h.o !== p.got || h.o + payload.length > h.n || h.t !== p.h.t) {
      this.#partial.delete(src);
      return this.drop();
    }
    p.buf.set(payload, h.o);
    p.got += payload.length;
    // Acks go every quarter window, not at each message's end: a sender
    // blocks only with over three quarters in flight, so one always comes.
    this.#unacked[src] += payload.length;
    if (this.#unacked[src] >= this.#window / 4) {
      this.#publish(src, { k: 1, j: h.j, g: h.g, s: this.rank, a: this.#unacked[src] });
      this.#unacked[src] = 0;
    }
    if (p.got < h.n) return;
    this.#partial.delete(src);
    const data = h.d === DTYPES.f32 ? new Float32Array(p.buf.buffer) : new Int32Array(p.buf.buffer);
    this.arrive(src, h.t, data, h.r);
  }
}
