/**
 * Direct links: the nodes of a `nats` job that run on the same host (same
 * kernel, same network namespace) send their messages to each other over a
 * TCP connection on loopback instead of through nats-server, the way Ray's
 * callers talk to an actor's worker directly. A call then costs two socket
 * hops instead of four, and no server thread has to wake up for it.
 *
 * NATS stays the control plane. Before its first message to a peer, a node
 * publishes a HELLO there (its host key, its loopback port, a nonce). A peer
 * on the same host connects, and the two authenticate each other by HMAC
 * over the job's secret (which never crosses the link). Once a link is up,
 * each side publishes a SWITCH marker to the other over NATS and from then
 * on sends on the link. The receiver holds what arrives on a link until that
 * sender's SWITCH has arrived over NATS: every message the sender published
 * before switching is delivered first, so the order per (sender, receiver)
 * holds across the switch. A link that closes (its peer died) is dropped,
 * and messages go over NATS again until a new one is up.
 *
 * @module
 */
import { hasFields } from "./bus.ts";
import { decode, encode, FrameError, randomHex } from "./codec.ts";

/** NATS frame kinds of the direct-link control plane (the codec uses 0 and 1). */
const HELLO = 2;
const SWITCH = 3;
/** Largest message on a link (1 GiB, as the reassembler's bound). */
const MAX_LINK_FRAME = 1 << 30;
/** Link writes up to this size are coalesced into one socket write. */
const COALESCE_BYTES = 64 << 10;
/** Time a peer has to finish the handshake. */
const HANDSHAKE_MS = 5_000;
/** How long closing waits for queued link writes. */
const CLOSE_DRAIN_MS = 2_000;
/** How long held messages of a link that closed before its SWITCH came are kept. */
const HELD_AFTER_CLOSE_MS = 10_000;
const ADDRESS = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether a NATS frame belongs to the direct-link control plane. */
export function isLinkControl(frame: Uint8Array): boolean {
  return frame.byteLength > 0 && (frame[0] === HELLO || frame[0] === SWITCH);
}

/**
 * What identifies "this host" for a direct link: host name, kernel boot id
 * and network namespace; null where /proc does not tell (no direct links).
 */
export function hostKey(): string | null {
  try {
    const boot = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
    return `${Deno.hostname()}/${boot}/${Deno.readLinkSync("/proc/self/ns/net")}`;
  } catch {
    return null;
  }
}

function controlFrame(kind: number, body: unknown): Uint8Array {
  const payload = encode(body);
  const frame = new Uint8Array(payload.byteLength + 1);
  frame[0] = kind;
  frame.set(payload, 1);
  return frame;
}

/** Decodes a msgpack map whose fields have the given kinds (see `hasFields`); throws FrameError. */
function fields<T>(bytes: Uint8Array, kinds: Record<keyof T, string>, what: string): T {
  let v: unknown;
  try {
    v = decode(bytes);
  } catch {
    throw new FrameError(`${what}: not msgpack`);
  }
  if (!hasFields(v, kinds)) throw new FrameError(`${what}: missing or mistyped fields`);
  return v as T;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.byteLength;) off += await conn.write(data.subarray(off));
}

/** Groups small consecutive chunks into buffers of up to COALESCE_BYTES; large ones pass as they are. */
function coalesce(chunks: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let runBytes = 0;
  const endRun = () => {
    if (run.length === 1) out.push(run[0]);
    else if (run.length > 1) {
      const joined = new Uint8Array(runBytes);
      let at = 0;
      for (const c of run) joined.set(c, (at += c.byteLength) - c.byteLength);
      out.push(joined);
    }
    run = [];
    runBytes = 0;
  };
  for (const c of chunks) {
    if (c.byteLength >= COALESCE_BYTES) {
      endRun();
      out.push(c);
      continue;
    }
    if (runBytes + c.byteLength > COALESCE_BYTES) endRun();
    run.push(c);
    runBytes += c.byteLength;
  }
  endRun();
  return out;
}

/** One TCP connection carrying length-prefixed frames (u32 little-endian length, then bytes). */
class Link {
  peer = "";
  id = "";
  #queue: Uint8Array[] = [];
  #writing: Promise<void> | null = null;
  #closed = false;

  constructor(readonly conn: Deno.TcpConn) {
    conn.setNoDelay(true);
  }

  /** Queues one frame; writes go out in order, small ones coalesced. */
  write(payload: Uint8Array): void {
    if (this.#closed) return;
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, payload.byteLength, true);
    this.#queue.push(head, payload);
    this.#writing ??= this.#flush();
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const parts = this.#queue;
        this.#queue = [];
        for (const chunk of coalesce(parts)) await writeAll(this.conn, chunk);
      }
    } catch {
      this.close(); // the read side sees the end and drops the link
    } finally {
      this.#writing = null;
    }
  }

  /** Resolves when every queued frame has been written (or the link failed). */
  async drained(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  /** The frames received, until the peer closes; throws FrameError on a frame over the bound. */
  async *frames(): AsyncGenerator<Uint8Array> {
    const buf = new Uint8Array(COALESCE_BYTES);
    let start = 0;
    let end = 0;
    for (;;) {
      while (end - start >= 4) {
        const len = new DataView(buf.buffer, start, 4).getUint32(0, true);
        if (len > MAX_LINK_FRAME) throw new FrameError(`link frame of ${len} bytes`);
        if (end - start - 4 >= len) {
          yield buf.slice(start + 4, start + 4 + len);
          start += 4 + len;
        } else if (len + 4 > buf.byteLength) {
          const body = new Uint8Array(len);
          const have = end - start - 4;
          body.set(buf.subarray(start + 4, end));
          start = end = 0;
          for (let off = have; off < len;) {
            const n = await this.conn.read(body.subarray(off));
            if (n === null) return;
            off += n;
          }
          yield body;
        } else break;
      }
      if (start > 0) {
        buf.copyWithin(0, start, end);
        end -= start;
        start = 0;
      }
      const n = await this.conn.read(buf.subarray(end));
      if (n === null) return;
      end += n;
    }
  }

  /** Whether the link was closed (by either side, or after a failed write). */
  get isClosed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** Sends a NATS control frame to a peer's node subject. */
type Publish = (to: string, frame: Uint8Array) => void;

/** A node's direct links to the peers on its host. */
export class DirectLinks {
  /** Messages sent on links, and received on them. */
  sent = 0;
  received = 0;
  /** Control frames, link frames and handshakes that were refused. */
  rejected = 0;
  readonly #nonce = randomHex(16);
  readonly #links = new Map<string, Link>();
  readonly #all = new Set<Link>();
  readonly #connecting = new Set<string>();
  readonly #helloSent = new Set<string>();
  readonly #switched = new Set<string>();
  readonly #held = new Map<string, Uint8Array[]>();
  #closed = false;

  private constructor(
    readonly address: string,
    readonly host: string,
    readonly listener: Deno.TcpListener,
    readonly key: CryptoKey,
    readonly publish: Publish,
    readonly deliver: (payload: Uint8Array) => void,
  ) {
    this.#acceptLoop();
  }

  /**
   * Listens on a free loopback port. `secret`: the job's link secret, equal on
   * every node; `host`: {@linkcode hostKey}; `publish` sends NATS control
   * frames; `deliver` takes each message received on a link, in order.
   */
  static async start(
    address: string,
    secret: string,
    host: string,
    publish: Publish,
    deliver: (payload: Uint8Array) => void,
  ): Promise<DirectLinks> {
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new DirectLinks(address, host, listener, key, publish, deliver);
  }

  /** The loopback port this node accepts links on. */
  get port(): number {
    return (this.listener.addr as Deno.NetAddr).port;
  }

  /** Peers this node sends to over a link now. */
  get linkedPeers(): string[] {
    return [...this.#links.keys()];
  }

  /**
   * Sends a message on the link to `to`; false when there is none, or it
   * failed and its end has not been read yet (send it over NATS).
   */
  send(to: string, payload: Uint8Array): boolean {
    const link = this.#links.get(to);
    if (!link || link.isClosed) return false;
    link.write(payload);
    this.sent++;
    return true;
  }

  /** The HELLO to publish to `to` before a message over NATS, or null when not needed. */
  helloFor(to: string): Uint8Array | null {
    if (this.#closed || to === this.address || this.#helloSent.has(to)) return null;
    this.#helloSent.add(to);
    return controlFrame(HELLO, {
      from: this.address,
      host: this.host,
      port: this.port,
      nonce: this.#nonce,
    });
  }

  /** Handles a control frame received over NATS; throws FrameError when it is malformed. */
  control(frame: Uint8Array): void {
    const body = frame.subarray(1);
    if (frame[0] === HELLO) {
      const h = fields<{ from: string; host: string; port: number; nonce: string }>(
        body,
        { from: "string", host: "string", port: "number", nonce: "string" },
        "link hello",
      );
      if (!ADDRESS.test(h.from) || !Number.isInteger(h.port) || h.port < 1 || h.port > 65535) {
        throw new FrameError("link hello: bad sender or port");
      }
      if (h.host !== this.host || h.from === this.address || this.#closed) return;
      if (this.#links.has(h.from) || this.#connecting.has(h.from)) return;
      this.#connect(h.from, h.port, h.nonce);
      return;
    }
    const s = fields<{ from: string; link: string }>(
      body,
      { from: "string", link: "string" },
      "link switch",
    );
    const key = `${s.from}/${s.link}`;
    this.#switched.add(key);
    const held = this.#held.get(key) ?? [];
    this.#held.delete(key);
    for (const payload of held) this.#deliver(payload);
  }

  async #sign(text: string): Promise<Uint8Array> {
    const mac = await crypto.subtle.sign("HMAC", this.key, new TextEncoder().encode(text));
    return new Uint8Array(mac);
  }

  async #verify(text: string, mac: unknown): Promise<boolean> {
    return mac instanceof Uint8Array &&
      await crypto.subtle.verify(
        "HMAC",
        this.key,
        new Uint8Array(mac),
        new TextEncoder().encode(text),
      );
  }

  async #connect(peer: string, port: number, peerNonce: string): Promise<void> {
    this.#connecting.add(peer);
    let link: Link | undefined;
    try {
      link = new Link(await Deno.connect({ hostname: "127.0.0.1", port }));
      link.peer = peer;
      link.id = randomHex(8);
      const nonce = randomHex(16);
      const proof = await this.#sign(`connect|${peer}|${this.address}|${link.id}|${peerNonce}`);
      link.write(encode({ from: this.address, to: peer, link: link.id, nonce, proof }));
      const frames = link.frames();
      const reply = await withDeadline(frames.next());
      const { proof: answer } = fields<{ proof: Uint8Array }>(
        reply,
        { proof: "object" },
        "link accept",
      );
      if (!await this.#verify(`accept|${peer}|${this.address}|${link.id}|${nonce}`, answer)) {
        throw new FrameError("link accept: bad proof");
      }
      this.#up(link, frames);
    } catch (e) {
      link?.close();
      if (e instanceof FrameError) this.rejected++;
    } finally {
      this.#connecting.delete(peer);
    }
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.listener) this.#accept(new Link(conn));
    } catch { /* listener closed */ }
  }

  async #accept(link: Link): Promise<void> {
    try {
      const frames = link.frames();
      const hello = fields<
        { from: string; to: string; link: string; nonce: string; proof: unknown }
      >(
        await withDeadline(frames.next()),
        { from: "string", to: "string", link: "string", nonce: "string", proof: "object" },
        "link handshake",
      );
      const text = `connect|${this.address}|${hello.from}|${hello.link}|${this.#nonce}`;
      if (
        hello.to !== this.address || !ADDRESS.test(hello.from) ||
        !await this.#verify(text, hello.proof)
      ) {
        throw new FrameError("link handshake: bad proof");
      }
      link.peer = hello.from;
      link.id = hello.link;
      const proof = await this.#sign(
        `accept|${this.address}|${hello.from}|${hello.link}|${hello.nonce}`,
      );
      link.write(encode({ proof }));
      this.#up(link, frames);
    } catch (e) {
      link.close();
      if (e instanceof FrameError) this.rejected++;
    }
  }

  /** A link is authenticated: sends on it (after a SWITCH over NATS) unless one is in use, and reads it. */
  async #up(link: Link, frames: AsyncGenerator<Uint8Array>): Promise<void> {
    if (this.#closed) return link.close();
    this.#all.add(link);
    if (!this.#links.has(link.peer)) {
      this.publish(link.peer, controlFrame(SWITCH, { from: this.address, link: link.id }));
      this.#links.set(link.peer, link);
    }
    const key = `${link.peer}/${link.id}`;
    try {
      for await (const payload of frames) {
        this.received++;
        if (this.#switched.has(key)) this.#deliver(payload);
        else if (this.#held.has(key)) this.#held.get(key)!.push(payload);
        else this.#held.set(key, [payload]);
      }
    } catch (e) {
      if (e instanceof FrameError) this.rejected++;
    }
    link.close();
    this.#all.delete(link);
    this.#switched.delete(key);
    if (this.#held.has(key)) {
      // Its SWITCH may still be on its way over NATS; a peer that died never sends it.
      const t = setTimeout(() => this.#held.delete(key), HELD_AFTER_CLOSE_MS);
      Deno.unrefTimer(t);
    }
    if (this.#links.get(link.peer) === link) {
      this.#links.delete(link.peer);
      this.#helloSent.delete(link.peer);
    }
  }

  #deliver(payload: Uint8Array): void {
    try {
      this.deliver(payload);
    } catch (e) {
      reportError(e); // a handler's failure is the handler's, not the link's
    }
  }

  /**
   * Writes what is queued on every link (for at most CLOSE_DRAIN_MS: a peer
   * that stopped reading cannot hold the close up), then closes the links and
   * the listener.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([...this.#all].map((l) => l.drained())),
      new Promise((r) => timer = setTimeout(r, CLOSE_DRAIN_MS)),
    ]);
    clearTimeout(timer);
    for (const l of this.#all) l.close();
    try {
      this.listener.close();
    } catch { /* already closed */ }
  }
}

/** The first frame of a handshake, or a FrameError after HANDSHAKE_MS. */
async function withDeadline(next: Promise<IteratorResult<Uint8Array>>): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FrameError("link handshake: no answer")), HANDSHAKE_MS);
  });
  try {
    const r = await Promise.race([next, late]);
    if (r.done) throw new FrameError("link handshake: closed");
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}
