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
