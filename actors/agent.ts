/**
 * The per-host agent: advertises this host's resources on NATS and spawns
 * actor processes on request, reporting their exit to the job's driver.
 *
 * A spawn request is authenticated only by the NATS credentials, which every
 * node of every job on the server holds: anyone with them can send one. So
 * the agent keeps its own module roots (the package root and
 * `--allow-module-root`, see `module_roots.ts`) and refuses a request whose
 * module lies outside them, whatever the driver's roots say; the process it
 * spawns is told the module and the agent's roots on its command line and
 * builds nothing else. A forged request can at most start an actor the agent
 * allows anyway.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, credentialsToEnv, type NatsCredentials, nodeSubject } from "./bus_nats.ts";
import { Chunker, decode, encode } from "./codec.ts";
import type { DeviceSpec } from "./protocol.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";
import {
  checkModuleUrl,
  folderOf,
  isUnderRoots,
  PACKAGE_ROOT,
  toModuleRoots,
} from "./module_roots.ts";

/** Subject on which every agent answers discovery requests. */
export const DISCOVER_SUBJECT = "scmoe.agents.discover";

/** What an agent advertises. */
export interface AgentInfo {
  /** Random id of this agent (8 hex digits). */
  agentId: string;
  /** The host's name. */
  hostname: string;
  /** CPU cores of the host. */
  cores: number;
  /** Compute devices the agent offers. */
  devices: DeviceSpec[];
}

/** The environment variable that hands an actor process its job's direct-link secret. */
export const LINK_SECRET_ENV = "SCMOE_LINK_SECRET";

/** A request to start one actor process. */
export interface SpawnRequest {
  jobId: string;
  actorId: string;
  incarnation: number;
  heartbeatMs: number;
  device?: DeviceSpec;
  /** The job's direct-link secret (see `direct_links.ts`), handed to the process in its environment. */
  linkSecret?: string;
  /** The module the actor is built from; refused unless under the agent's own roots. */
  moduleUrl: string;
  /** The export the actor is built from (informational). */
  exportName?: string;
  /** The driver's module roots (informational: the agent trusts only its own). */
  moduleRoots?: string[];
}

/** Options of {@linkcode Agent.start}. */
export interface AgentOptions {
  /**
   * Folders (paths or `file:`/`https:` URLs) whose modules this agent's
   * processes may build actors from, besides the package's own root.
   */
  moduleRoots?: (string | URL)[];
  /** Devices advertised (default one wasm device). */
  devices?: DeviceSpec[];
}

/** The subject of an agent's spawn and kill requests. */
export function agentSubject(agentId: string, verb: "spawn" | "kill"): string {
  return `scmoe.agent.${agentId}.${verb}`;
}

const PROCESS_MAIN = new URL("./process_main.ts", import.meta.url);

/** SIGKILLs a child process and waits until it is gone. */
async function killAndWait(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
}

/** Runs on one host; spawns and watches actor processes. */
export class Agent {
  /** What this agent advertises on discovery. */
  readonly info: AgentInfo;
  /** The folders whose modules this agent's processes may load: the package root, then the given ones. */
  readonly moduleRoots: readonly string[];
  /** The working directory of the processes spawned: this agent's at its start. */
  readonly cwd: string = Deno.cwd();
  readonly #children = new Map<string, Deno.ChildProcess>();
  readonly #chunker = new Chunker(1 << 16);
  #refusedSpawns = 0;

  readonly #nc: NatsConnection;
  readonly #creds: NatsCredentials;

  private constructor(
    nc: NatsConnection,
    creds: NatsCredentials,
    devices: DeviceSpec[],
    moduleRoots: string[],
  ) {
    this.info = {
      agentId: crypto.randomUUID().slice(0, 8),
      hostname: Deno.hostname(),
      cores: navigator.hardwareConcurrency,
      devices,
    };
    this.moduleRoots = moduleRoots;
    this.#nc = nc;
    this.#creds = creds;
  }

  /**
   * Connects to NATS and starts serving requests. Throws a TypeError, before
   * connecting, when a module root is not a `file:` or `https:` folder.
   */
  static async start(creds: NatsCredentials, opts: AgentOptions = {}): Promise<Agent> {
    const roots = toModuleRoots([PACKAGE_ROOT, ...(opts.moduleRoots ?? [])]);
    const devices = opts.devices ?? [{ backend: "wasm", index: 0 }];
    const nc = await connectNats(creds, "scmoe-agent");
    const agent = new Agent(nc, creds, devices, roots);
    nc.subscribe(DISCOVER_SUBJECT, { callback: (_e, m) => void m.respond(encode(agent.info)) });
    nc.subscribe(agentSubject(agent.info.agentId, "spawn"), {
      callback: (_e, m) => {
        let reply: unknown;
        try {
          reply = { ok: true, pid: agent.#spawn(decode(m.data) as SpawnRequest) };
        } catch (e) {
          reply = { ok: false, error: e instanceof Error ? e.message : String(e) };
        }
        m.respond(encode(reply));
      },
    });
    nc.subscribe(agentSubject(agent.info.agentId, "kill"), {
      callback: (_e, m) => {
        let req: { jobId?: unknown; actorId?: unknown } = {};
        try {
          req = decode(m.data) as typeof req;
        } catch { /* answered below: nothing to kill */ }
        const child = agent.#children.get(`${req?.jobId}/${req?.actorId}`);
        (child ? killAndWait(child) : Promise.resolve()).then(() =>
          m.respond(encode({ ok: true }))
        );
      },
    });
    await nc.flush();
    return agent;
  }

  #spawn(req: SpawnRequest): number {
    for (const [k, v] of Object.entries({ jobId: req.jobId, actorId: req.actorId })) {
      if (typeof v !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(v)) {
        throw new TypeError(`bad ${k}`);
      }
    }
    if (!Number.isInteger(req.incarnation) || !(req.heartbeatMs > 0)) {
      throw new TypeError("bad incarnation or heartbeatMs");
    }
    if (req.linkSecret !== undefined && !/^[0-9a-f]{64}$/.test(String(req.linkSecret))) {
      throw new TypeError("bad linkSecret");
    }
    const moduleUrl = this.#checkModule(req.moduleUrl);
    const env = credentialsToEnv(this.#creds);
    if (req.linkSecret) env[LINK_SECRET_ENV] = req.linkSecret;
    if (req.device) env.SCMOE_DEVICE = `${req.device.backend}:${req.device.index}`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        V8_HEAP_FLAG,
        PROCESS_MAIN.href,
        `--job=${req.jobId}`,
        `--actor=${req.actorId}`,
        `--incarnation=${req.incarnation}`,
        `--servers=${this.#creds.servers.join(",")}`,
        `--heartbeat=${req.heartbeatMs}`,
        `--module=${moduleUrl}`,
        ...this.moduleRoots.map((root) => `--module-root=${root}`),
      ],
      // The agent's directory, not the package's: relative paths of the user's job hold.
      cwd: this.cwd,
      env,
      // Never written: the child sees end-of-file when this agent dies, even by SIGKILL.
      stdin: "piped",
    }).spawn();
    const key = `${req.jobId}/${req.actorId}`;
    this.#children.set(key, child);
    child.status.then((status) => {
      child.stdin.close().catch(() => {});
      if (this.#children.get(key) === child) this.#children.delete(key);
      const how = status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
      this.#report(req, `process ${child.pid} ended with ${how}`);
    });
    return child.pid;
  }

  /** The request's module, normalized; throws (and counts) when it is outside this agent's roots. */
  #checkModule(moduleUrl: unknown): string {
    const who = `agent ${this.info.agentId}`;
    let href: string;
    try {
      href = checkModuleUrl(String(moduleUrl));
    } catch (e) {
      this.#refusedSpawns++;
      throw new TypeError(`${who} refuses the spawn: ${(e as Error).message}`);
    }
    if (!isUnderRoots(href, this.moduleRoots)) {
      this.#refusedSpawns++;
      throw new Error(
        `${who} refuses actor module ${href}: outside its module roots (${
          this.moduleRoots.join(", ")
        }); start the agent with --allow-module-root ${folderOf(href)}`,
      );
    }
    return href;
  }

  #report(req: SpawnRequest, reason: string): void {
    if (this.#nc.isClosed()) return;
    const msg = {
      type: "actor-died",
      actorId: req.actorId,
      reason,
      restarting: false,
      incarnation: req.incarnation,
    };
    for (const f of this.#chunker.frames(encode(msg))) {
      this.#nc.publish(nodeSubject(req.jobId, "driver"), f);
    }
  }

  /** Spawn requests refused because their module was invalid or outside this agent's roots. */
  get refusedSpawns(): number {
    return this.#refusedSpawns;
  }

  /** Actor processes alive now. */
  get children(): number {
    return this.#children.size;
  }

  /** Kills every child, waits for them, and disconnects. */
  async stop(): Promise<void> {
    await Promise.all([...this.#children.values()].map(killAndWait));
    this.#children.clear();
    await this.#nc.close();
  }
}
