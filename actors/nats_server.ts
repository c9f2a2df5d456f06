/**
 * Starts a private nats-server (the Debian `nats-server` package) on a free
 * loopback port, with a random auth token and a raised max_payload; or
 * inside a network namespace (`collectives/netns.ts`) on one of its addresses.
 *
 * @module
 */

import { randomHex } from "./codec.ts";

/** Options of {@linkcode startNatsServer}. */
export interface NatsServerOptions {
  /** Largest message the server accepts (default 8 MiB). */
  maxPayload?: number;
  /** Auth token clients must present (default: random). `null` for none. */
  token?: string | null;
  /** Users instead of a token: by name and password, or by nkey public key (`U...`). */
  users?: ({ user: string; password: string } | { nkey: string })[];
  /**
   * Decentralized (JWT) auth instead of a token: the operator's JWT and the
   * JWT of each account by its public key (`A...`), preloaded in a memory
   * resolver. Clients connect with a credentials file of a user of one of them.
   */
  operator?: { jwt: string; accounts: Record<string, string> };
  /** Address to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** Port (default: a free one; 4222 inside a namespace). */
  port?: number;
  /** Run inside this network namespace (root only); `host` is then one of its addresses. */
  netns?: string;
  /** Bytes the server buffers for one client before cutting it off as a slow consumer (256 MiB). */
  maxPending?: number;
  /**
   * Go threads the server runs at once (its GOMAXPROCS). Default
   * {@linkcode defaultServerProcs}: a quarter of this host's cores, at least
   * one. The actors keep the cores busy; a server with a thread for every
   * core makes Go spin idle threads looking for work, which steals those
   * cores and delays each message's wake-up.
   */
  maxProcs?: number;
  /** The server executable: a name looked up on PATH or a path (default `nats-server`). */
  binary?: string;
}

/**
 * The nats-server executable is not installed (not on PATH, or not at the
 * path given). The message is one line naming the fix.
 */
export class NatsServerNotFoundError extends Error {
  /** Builds the error for the executable `binary` (a name on PATH or a path). */
  constructor(readonly binary: string) {
    super(
      `${binary} not found ${binary.includes("/") ? "" : "on PATH"}`.trimEnd() +
        ": install it (apt-get install nats-server) or pass a nats:// URL",
    );
    this.name = "NatsServerNotFoundError";
  }
}

/** Whether `binary` (a name looked up on PATH, or a path) is an executable file. */
function executableExists(binary: string): boolean {
  const dirs = binary.includes("/") ? [""] : (Deno.env.get("PATH") ?? "").split(":");
  for (const dir of dirs) {
    if (!binary.includes("/") && dir === "") continue;
    try {
      const st = Deno.statSync(dir ? `${dir}/${binary}` : binary);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch {
      // not there
    }
  }
  return false;
}

/**
 * Default GOMAXPROCS of a private server: a quarter of the host's cores, at
 * least one. On the 2-core machine here, one thread instead of two raised
 * raw NATS round trips between two Deno processes from 3,556–3,921/s to
 * 4,224–4,538/s, and left all-to-all bandwidth through the server as it was.
 */
export function defaultServerProcs(cores = navigator.hardwareConcurrency): number {
  return Math.max(1, Math.floor(cores / 4));
}

/** A running private server. */
export interface NatsServer {
  /** Client URL, e.g. `nats://127.0.0.1:41234`. */
  url: string;
  /** Token clients must present, if any. */
  token?: string;
  /** Process id of the server. */
  pid: number;
  /** Kills the server and waits for it to exit. */
  stop(): Promise<void>;
}

/** A TCP port nobody listens on now. */
export function freePort(host = "127.0.0.1"): number {
  const l = Deno.listen({ hostname: host, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Starts nats-server and waits until it accepts connections.
 *
 * @throws {NatsServerNotFoundError} when the executable is not installed.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = opts.binary ?? "nats-server";
  if (!executableExists(binary)) throw new NatsServerNotFoundError(binary);
  const host = opts.host ?? "127.0.0.1";
  const port = opts.port ?? (opts.netns ? 4222 : freePort(host));
  const token = opts.token === null || opts.operator ? undefined : opts.token ??
    randomHex(16);
  const maxProcs = opts.maxProcs ?? defaultServerProcs();
  if (!Number.isInteger(maxProcs) || maxProcs < 1) {
    throw new RangeError(`maxProcs must be an integer >= 1, got ${maxProcs}`);
  }
  const dir = await Deno.makeTempDir({ prefix: "scmoe-nats-" });
  const conf = `${dir}/nats.conf`;
  const lines = [
    `listen: "${host}:${port}"`,
    `max_payload: ${opts.maxPayload ?? 8 * 1024 * 1024}`,
    `max_pending: ${opts.maxPending ?? 256 * 1024 * 1024}`,
    `write_deadline: "10s"`,
  ];
  if (token) lines.push(`authorization { token: "${token}" }`);
  if (opts.users) {
    const users = opts.users.map((u) =>
      "nkey" in u ? `{ nkey: "${u.nkey}" }` : `{ user: "${u.user}", password: "${u.password}" }`
    );
    lines.push(`authorization { users: [ ${users.join(", ")} ] }`);
  }
  if (opts.operator) {
    const accounts = Object.entries(opts.operator.accounts).map(([k, jwt]) => `${k}: "${jwt}"`);
    lines.push(
      `operator: "${opts.operator.jwt}"`,
      `resolver: MEMORY`,
      `resolver_preload: { ${accounts.join(", ")} }`,
    );
  }
  await Deno.writeTextFile(conf, lines.join("\n") + "\n", { mode: 0o600 });
  let child: Deno.ChildProcess;
  try {
    const cmd = [binary, "-c", conf];
    const [exe, ...args] = opts.netns ? ["ip", "netns", "exec", opts.netns, ...cmd] : cmd;
    child = new Deno.Command(exe, {
      args,
      env: { GOMAXPROCS: String(maxProcs) },
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    if (e instanceof Deno.errors.NotFound) {
      throw opts.netns
        ? new Error("ip not found: install it (apt-get install iproute2)")
        : new NatsServerNotFoundError(binary);
    }
    throw e;
  }
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  let log = "";
  const reading = stderr.pipeTo(
    new WritableStream({ write: (c) => void (log = (log + c).slice(-4000)) }),
  );
  const stop = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await child.status;
    await reading.catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  // Ready once it says so (a namespace's address cannot be probed from here).
  const deadline = Date.now() + 10_000;
  let exited = false;
  child.status.then(() => exited = true);
  while (!log.includes("Server is ready")) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(
        `nats-server did not start on ${host}:${port}: ${log.trim().split("\n").pop()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url: `nats://${host}:${port}`, token, pid: child.pid, stop };
}
