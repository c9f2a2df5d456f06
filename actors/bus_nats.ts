/**
 * The NATS bus: each node subscribes to `scmoe.<job>.<address>`; messages are
 * msgpack-encoded and chunked under the server's max_payload.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, type NatsCredentials } from "../collectives/nats_connect.ts";
import { type Bus, isMessage } from "./bus.ts";
import { Chunker, decode, encode, Reassembler } from "./codec.ts";
import type { Message } from "./protocol.ts";

export {
  connectNats,
  credentialsFromEnv,
  credentialsToEnv,
  type NatsCredentials,
} from "../collectives/nats_connect.ts";

/** The subject a node of a job listens on. */
export function nodeSubject(jobId: string, address: string): string {
  return `scmoe.${jobId}.${address}`;
}

/** A node's bus over one NATS connection. */
export class NatsBus implements Bus {
  rejectedFrames = 0;
  readonly #chunker: Chunker;
  readonly #reassembler = new Reassembler();
  #handler: (msg: Message) => void = () => {};

  private constructor(
    readonly nc: NatsConnection,
    readonly jobId: string,
    readonly address: string,
  ) {
    this.#chunker = new Chunker(nc.info?.max_payload ?? 1 << 20);
  }

  /** Connects, subscribes to this node's subject and waits until the server has the subscription. */
  static async open(creds: NatsCredentials, jobId: string, address: string): Promise<NatsBus> {
    const nc = await connectNats(creds, `scmoe-${jobId}-${address}`);
    const bus = new NatsBus(nc, jobId, address);
    nc.subscribe(nodeSubject(jobId, address), {
      callback: (err, m) => {
        if (err) return;
        bus.#receive(m.data);
      },
    });
    await nc.flush();
    return bus;
  }

  #receive(frame: Uint8Array): void {
    let msg: unknown;
    try {
      const payload = this.#reassembler.push(frame);
      if (payload === null) return;
      msg = decode(payload);
    } catch {
      this.rejectedFrames++;
      return;
    }
    if (!isMessage(msg)) {
      this.rejectedFrames++;
      return;
    }
    this.#handler(msg);
  }

  /** Publishes a message to `to`, in chunks when it is large. */
  send(to: string, msg: Message): void {
    if (this.nc.isClosed()) return;
    const subject = nodeSubject(this.jobId, to);
    for (const frame of this.#chunker.frames(encode(msg))) this.nc.publish(subject, frame);
  }

  /** Installs the handler of incoming messages. */
  onMessage(handler: (msg: Message) => void): void {
    this.#handler = handler;
  }

  /** Flushes what was published and closes the connection. */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    await this.nc.flush().catch(() => {});
    await this.nc.close();
  }
}
