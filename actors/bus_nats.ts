/**
 * The NATS bus: each node subscribes to `scmoe.<job>.<address>`; messages are
 * msgpack-encoded and chunked under the server's max_payload. Given the
 * job's link secret, nodes on the same host move their messages over direct
 * links (`direct_links.ts`) and keep NATS for the rest.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, type NatsCredentials } from "../collectives/nats_connect.ts";
import { type Bus, isMessage } from "./bus.ts";
import { Chunker, decode, encode, Reassembler } from "./codec.ts";
import { DirectLinks, hostKey, isLinkControl } from "./direct_links.ts";
import type { Message } from "./protocol.ts";

export {
  connectNats,
  credentialsFromEnv,
  credentialsToEnv,
  NatsConnectError,
  type NatsCredentials,
} from "../collectives/nats_connect.ts";

/** The subject a node of a job listens on. */
export function nodeSubject(jobId: string, address: string): string {
  return `scmoe.${jobId}.${address}`;
}

/** A node's bus over one NATS connection. */
export class NatsBus implements Bus {
  #rejected = 0;
  readonly #chunker: Chunker;
  readonly #reassembler = new Reassembler();
  #handler: (msg: Message) => void = () => {};
  /** This node's direct links to the nodes on its host, when the job has a link secret. */
  direct?: DirectLinks;

  private constructor(
    readonly nc: NatsConnection,
    readonly jobId: string,
    readonly address: string,
  ) {
    this.#chunker = new Chunker(nc.info?.max_payload ?? 1 << 20);
  }

  /**
   * Connects, subscribes to this node's subject and waits until the server
   * has the subscription. `links`: the job's link secret (equal on every
   * node) and, for tests, the host key to present (default
   * {@linkcode hostKey}); without it, every message goes over NATS.
   */
  static async open(
    creds: NatsCredentials,
    jobId: string,
    address: string,
    links?: { secret: string; host?: string },
  ): Promise<NatsBus> {
    const nc = await connectNats(creds, `scmoe-${jobId}-${address}`);
    const bus = new NatsBus(nc, jobId, address);
    const host = links?.host ?? hostKey();
    if (links && host) {
      bus.direct = await DirectLinks.start(
        address,
        links.secret,
        host,
        (to, frame) => bus.#publish(to, [frame]),
        (payload) => bus.#deliver(payload),
      );
    }
    nc.subscribe(nodeSubject(jobId, address), {
      callback: (err, m) => {
        if (err) return;
        bus.#receive(m.data);
      },
    });
    await nc.flush();
    return bus;
  }

  /** Frames received that were not valid messages (over NATS or a link), dropped. */
  get rejectedFrames(): number {
    return this.#rejected + (this.direct?.rejected ?? 0);
  }

  #receive(frame: Uint8Array): void {
    try {
      if (isLinkControl(frame)) {
        this.direct?.control(frame);
        return;
      }
      const payload = this.#reassembler.push(frame);
      if (payload !== null) this.#deliver(payload);
    } catch {
      this.#rejected++;
    }
  }

  #deliver(payload: Uint8Array): void {
    let msg: unknown;
    try {
      msg = decode(payload);
    } catch {
      this.#rejected++;
      return;
    }
    if (!isMessage(msg)) {
      this.#rejected++;
      return;
    }
    this.#handler(msg);
  }

  #publish(to: string, frames: Uint8Array[]): void {
    if (this.nc.isClosed()) return;
    const subject = nodeSubject(this.jobId, to);
    for (const frame of frames) this.nc.publish(subject, frame);
  }

  /** Sends a message to `to`: on the direct link when there is one, else over NATS in chunks. */
  send(to: string, msg: Message): void {
    if (this.nc.isClosed()) return;
    const payload = encode(msg);
    if (this.direct?.send(to, payload)) return;
    const hello = this.direct?.helloFor(to);
    if (hello) this.#publish(to, [hello]);
    this.#publish(to, this.#chunker.frames(payload));
  }

  /** Installs the handler of incoming messages. */
  onMessage(handler: (msg: Message) => void): void {
    this.#handler = handler;
  }

  /** Writes what is queued on the links, flushes what was published and closes. */
  async close(): Promise<void> {
    await this.direct?.close();
    if (this.nc.isClosed()) return;
    await this.nc.flush().catch(() => {});
    await this.nc.close();
  }
}
