/**
 * Connecting to NATS with any of its authentication schemes (token, user and
 * password, nkey, credentials file), and handing credentials to child
 * processes through their environment.
 *
 * @module
 */
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
} from "@nats-io/transport-node";

/** How to reach a NATS server. */
export interface NatsCredentials {
  /** Server URLs, e.g. `["nats://127.0.0.1:4222"]`. */
  servers: string[];
  /** Auth token, if the server requires one. */
  token?: string;
  /** User name, if the server requires a user and password. */
  user?: string;
  /** Password of `user`. */
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

/**
 * No server of a NATS URL answered: refused, unknown host, unreachable
 * network or no answer within the connect timeout. The message is one line,
 * e.g. `cannot reach NATS at nats://127.0.0.1:4222: connection refused`.
 * A server that answers but refuses the credentials is not this error.
 */
export class NatsConnectError extends Error {
  /** Builds the error for `servers` and the reason, in a few words. */
  constructor(readonly servers: string[], readonly reason: string, options?: ErrorOptions) {
    super(
      `cannot reach NATS at ${servers.join(", ")}: ${reason}`.replace(/\s*\n\s*/g, " "),
      options,
    );
    this.name = "NatsConnectError";
  }
}

/** Milliseconds {@linkcode connectNats} waits for a server to answer by default (nats.js' own). */
export const NATS_CONNECT_TIMEOUT_MS = 20_000;

const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
  ECONNRESET: "connection reset before the NATS handshake",
};

/** The reason, in a few words, when `e` says no server could be reached; else null. */
function unreachableReason(e: unknown, timeoutMs: number): string | null {
  for (let c = e, depth = 0; c instanceof Error && depth < 4; c = c.cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string" && code in UNREACHABLE) return UNREACHABLE[code];
  }
  if (!(e instanceof Error)) return null;
  if (e.name === "ConnectionError" && e.message === "connection refused") {
    return "connection refused";
  }
  if (e.name === "ConnectionError" && e.message.startsWith("error connecting")) {
    return "the server closed the connection before the NATS handshake (not a NATS port?)";
  }
  if (e.name === "TimeoutError") return `no answer within ${timeoutMs / 1000} s`;
  return null;
}

/**
 * Opens a NATS connection with the given credentials, reconnecting forever
 * once connected.
 *
 * @param timeoutMs How long to wait for a server's answer.
 * @throws {NatsConnectError} when no server answers (one line, within
 *   `timeoutMs`); a refusal of the credentials is thrown as nats.js reports
 *   it ("Authorization Violation").
 */
export async function connectNats(
  creds: NatsCredentials,
  name: string,
  timeoutMs: number = NATS_CONNECT_TIMEOUT_MS,
): Promise<NatsConnection> {
  const authenticator = creds.nkeySeed
    ? nkeyAuthenticator(new TextEncoder().encode(creds.nkeySeed))
    : creds.credsFile
    ? credsAuthenticator(await Deno.readFile(creds.credsFile))
    : undefined;
  try {
    return await connect({
      servers: creds.servers,
      token: creds.token,
      user: creds.user,
      pass: creds.pass,
      authenticator,
      name,
      timeout: timeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
  } catch (e) {
    const reason = unreachableReason(e, timeoutMs);
    if (reason === null) throw e;
    throw new NatsConnectError(creds.servers, reason, { cause: e });
  }
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
