/**
 * The per-host agent: advertises this host's resources on NATS and spawns
 * actor processes on request, reporting their exit to the job's driver.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, credentialsToEnv, type NatsCredentials, nodeSubject } from "./bus_nats.ts";
import { Chunker, decode, encode } from "./codec.ts";
import type { DeviceSpec } from "./protocol.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";

/** Subject on which every agent answers discovery requests. */
export const DISCOVER_SUBJECT = "scmoe.agents.discover";

/** What an agent advertises. */
export interface AgentInfo {
  agentId: string;
  hostname: string;
  cores: number;
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
}

/** The subject of an agent's spawn and kill requests. */
export function agentSubject(agentId: string, verb: "spawn" | "kill"): string {
  return `scmoe.agent.${agentId}.${verb}`;
}

const PROCESS_MAIN = new URL("./process_main.ts", import.meta.url);
const PROJECT_DIR = new URL("../", import.meta.url);

/** SIGKILLs a child process and waits until it is gone. */
async function killAndWait(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
}

/** Runs on one host; spawns and watches actor processes. */
export class Agent {
  readonly info: AgentInfo;
  readonly #children = new Map<string, Deno.ChildProcess>();
  readonly #chunker = new Chunker(1 << 16);

  private constructor(
    readonly nc: NatsConnection,
    readonly creds: NatsCredentials,
    devices: DeviceSpec[],
  ) {
    this.info = {
      agentId: crypto.randomUUID().slice(0, 8),
      hostname: Deno.hostname(),
      cores: navigator.hardwareConcurrency,
      devices,
    };
  }

  /** Connects to NATS and starts serving requests. */
  static async start(
    creds: NatsCredentials,
    devices: DeviceSpec[] = [{ backend: "wasm", index: 0 }],
  ): Promise<Agent> {
    const nc = await connectNats(creds, "scmoe-agent");
    const agent = new Agent(nc, creds, devices);
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
    const env = credentialsToEnv(this.creds);
    if (req.linkSecret) env[LINK_SECRET_ENV] = req.linkSecret;
    if (req.device) env.SCMOE_DEVICE = `${req.device.backend}:${req.device.index}`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        V8_HEAP_FLAG,
        PROCESS_MAIN.pathname,
        `--job=${req.jobId}`,
        `--actor=${req.actorId}`,
        `--incarnation=${req.incarnation}`,
        `--servers=${this.creds.servers.join(",")}`,
        `--heartbeat=${req.heartbeatMs}`,
      ],
      cwd: PROJECT_DIR.pathname,
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

  #report(req: SpawnRequest, reason: string): void {
    if (this.nc.isClosed()) return;
    const msg = {
      type: "actor-died",
      actorId: req.actorId,
      reason,
      restarting: false,
      incarnation: req.incarnation,
    };
    for (const f of this.#chunker.frames(encode(msg))) {
      this.nc.publish(nodeSubject(req.jobId, "driver"), f);
    }
  }

  /** Actor processes alive now. */
  get children(): number {
    return this.#children.size;
  }

  /** Kills every child, waits for them, and disconnects. */
  async stop(): Promise<void> {
    await Promise.all([...this.#children.values()].map(killAndWait));
    this.#children.clear();
    await this.nc.close();
  }
}
