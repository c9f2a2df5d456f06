/**
 * The NATS bus: each node subscribes to `scmoe.<job>.<address>`; messages are
 * msgpack-encoded and chunked under the server's max_payload.
 *
 * @module
 */
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
} from "@nats-io/transport-node";
import { type Bus, isMessage } from "./bus.ts";
import { Chunker, decode, encode, Reassembler } from "./codec.ts";
import type { Message } from "./protocol.ts";

/** How to reach a NATS server. */
export interface NatsCredentials {
  /** Server URLs, e.g. `["nats://127.0.0.1:4222"]`. */
  servers: string[];
  /** Auth token, if the server requires one. */
  token?: string;
  /** User name and password, if the server requires them. */
  user?: string;
  pass?: string;
  /** An nkey seed (`SU...`), if the server authenticates users by nkey. */
  nkeySeed?: string;
  /** Path of a NATS credentials file (JWT + seed), for decentralized auth. */
  credsFile?: string;
}

/**
 * nats.js under Deno's Node compatibility drops its socket listeners when a
 * connection is refused (e.g. "Authorization Violation"); the server's reset
 * of that abandoned socket then surfaces as an uncaught ECONNRESET that would
 * end the process. The refusal itself is already reported by `connect`, so
 * such orphan resets are swallowed here; live connections handle their own.
 */
function swallowOrphanSocketResets(): void {
  globalThis.addEventListener("error", (e) => {
    if ((e as ErrorEvent).error?.code === "ECONNRESET") e.preventDefault();
  });
}
swallowOrphanSocketResets();

/** Opens a NATS connection with the given credentials, reconnecting forever. */
export async function connectNats(creds: NatsCredentials, name: string): Promise<NatsConnection> {
  const authenticator = creds.nkeySeed
    ? nkeyAuthenticator(new TextEncoder().encode(creds.nkeySeed))
    : creds.credsFile
    ? credsAuthenticator(await Deno.readFile(creds.credsFile))
    : undefined;
  return await connect({
    servers: creds.servers,
    token: creds.token,
    user: creds.user,
    pass: creds.pass,
    authenticator,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  });
}

const CRED_ENV = {
  token: "SCMOE_NATS_TOKEN",
  user: "SCMOE_NATS_USER",
  pass: "SCMOE_NATS_PASS",
  nkeySeed: "SCMOE_NATS_NKEY_SEED",
  credsFile: "SCMOE_NATS_CREDS_FILE",
} as const;

/** The environment that hands credentials to a child process (never its argv, which `ps` shows). */
export function credentialsToEnv(creds: NatsCredentials): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, name] of Object.entries(CRED_ENV)) {
    const v = creds[key as keyof typeof CRED_ENV];
    if (v) env[name] = v;
  }
  return env;
}

/** Credentials for `servers` read from the environment made by {@linkcode credentialsToEnv}. */
export function credentialsFromEnv(servers: string[]): NatsCredentials {
  const creds: NatsCredentials = { servers };
  for (const [key, name] of Object.entries(CRED_ENV)) {
    const v = Deno.env.get(name);
    if (v) creds[key as keyof typeof CRED_ENV] = v;
  }
  return creds;
}

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
