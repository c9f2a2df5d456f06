/**
 * Where actor nodes live: as Workers of this process (`local`) or as
 * processes spawned by host agents over NATS.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { type AgentInfo, agentSubject, DISCOVER_SUBJECT, type SpawnRequest } from "./agent.ts";
import type { HubBus } from "./bus_local.ts";
import { decode, encode } from "./codec.ts";
import type { DeviceSpec } from "./protocol.ts";

/** What a placer needs to know of one actor incarnation. */
export interface PlacementRequest {
  actorId: string;
  incarnation: number;
  device?: DeviceSpec;
  /** Agent id or host name to place on (nats clusters only). */
  host?: string;
  /** The module the actor is built from (checked against `moduleRoots` already). */
  moduleUrl: string;
  /** The export of `moduleUrl` the actor is built from (for messages). */
  exportName: string;
  /** The driver's module roots (see `module_roots.ts`). */
  moduleRoots: string[];
}

/** Starts and stops actor nodes. */
export interface Placer {
  /** Brings the node up; it can receive messages when this resolves. Returns a description. */
  start(req: PlacementRequest): Promise<string>;
  /** Hard-stops the node (no-op when already gone). */
  stop(actorId: string): Promise<void>;
}

/** Actors as Workers of this process. */
export class WorkerPlacer implements Placer {
  readonly #workers = new Map<string, Worker>();

  /** Builds the placer; `onDeath` is told when a Worker fails with an uncaught error. */
  constructor(
    readonly hub: HubBus,
    readonly onDeath: (actorId: string, incarnation: number, reason: string) => void,
  ) {}

  /**
   * Spawns the actor's Worker. Its address, module and module roots go in
   * its name, fixed at construction: the Worker never takes them from the bus.
   */
  start(req: PlacementRequest): Promise<string> {
    const { actorId: address, moduleUrl, moduleRoots } = req;
    const worker = new Worker(new URL("./worker_main.ts", import.meta.url), {
      type: "module",
      name: JSON.stringify({ address, moduleUrl, moduleRoots }),
    });
    worker.addEventListener("error", (e) => {
      e.preventDefault();
      this.stop(req.actorId);
      this.onDeath(req.actorId, req.incarnation, `uncaught error in worker: ${e.message}`);
    });
    this.#workers.set(req.actorId, worker);
    this.hub.attach(req.actorId, worker);
    return Promise.resolve("worker");
  }

  /** Terminates the Worker (and the Workers it started). */
  stop(actorId: string): Promise<void> {
    const w = this.#workers.get(actorId);
    if (w) {
      this.#workers.delete(actorId);
      this.hub.detach(actorId, w);
      w.terminate();
    }
    return Promise.resolve();
  }
}

/** Milliseconds an agent has to answer a request to start an actor process. */
const SPAWN_WAIT_MS = 10_000;

/** Actors as processes spawned by the host agents reachable over NATS. */
export class AgentPlacer implements Placer {
  #agents: AgentInfo[] = [];
  #next = 0;
  readonly #where = new Map<string, string>();

  /** Builds the placer; `awaitUp` resolves when the actor's first heartbeat arrives. */
  constructor(
    readonly nc: NatsConnection,
    readonly jobId: string,
    readonly heartbeatMs: number,
    readonly awaitUp: (actorId: string, incarnation: number) => Promise<void>,
    readonly agentWaitMs = 10_000,
    readonly linkSecret?: string,
  ) {}

  /** Asks every agent to identify itself; retries until one answers or the wait ends. */
  async discover(): Promise<AgentInfo[]> {
    const deadline = Date.now() + this.agentWaitMs;
    while (true) {
      const found: AgentInfo[] = [];
      const replies = await this.nc.requestMany(DISCOVER_SUBJECT, new Uint8Array(), {
        maxWait: 300,
      });
      for await (const m of replies) {
        try {
          found.push(decode(m.data) as AgentInfo);
        } catch { /* not an agent */ }
      }
      if (found.length > 0 || Date.now() > deadline) {
        this.#agents = found.sort((a, b) => a.agentId.localeCompare(b.agentId));
        return this.#agents;
      }
    }
  }

  #choose(host?: string): AgentInfo {
    if (this.#agents.length === 0) {
      throw new Error(
        "no host agent answered on NATS: start one with `deno task agent --nats URL`",
      );
    }
    if (host !== undefined) {
      const a = this.#agents.find((x) => x.agentId === host || x.hostname === host);
      if (!a) throw new Error(`no host agent with id or hostname "${host}"`);
      return a;
    }
    return this.#agents[this.#next++ % this.#agents.length];
  }

  /** Spawns the actor process on an agent and waits for its first heartbeat. */
  async start(req: PlacementRequest): Promise<string> {
    if (this.#agents.length === 0) await this.discover();
    const agent = this.#choose(req.host);
    const spawn: SpawnRequest = {
      jobId: this.jobId,
      actorId: req.actorId,
      incarnation: req.incarnation,
      heartbeatMs: this.heartbeatMs,
      device: req.device,
      linkSecret: this.linkSecret,
      moduleUrl: req.moduleUrl,
      exportName: req.exportName,
      moduleRoots: req.moduleRoots,
    };
    const up = this.awaitUp(req.actorId, req.incarnation);
    up.catch(() => {}); // awaited below, unless the spawn fails first
    const answer = await this.nc.request(agentSubject(agent.agentId, "spawn"), encode(spawn), {
      timeout: SPAWN_WAIT_MS,
    }).catch((e) => {
      throw new Error(
        `agent ${agent.agentId} on ${agent.hostname} did not answer the request to start ` +
          `${req.actorId} within ${SPAWN_WAIT_MS / 1000} s (${(e as Error).message})`,
      );
    });
    const reply = decode(answer.data) as { ok: boolean; pid?: number; error?: string };
    if (!reply.ok) {
      throw new Error(`agent ${agent.agentId} could not spawn ${req.actorId}: ${reply.error}`);
    }
    this.#where.set(req.actorId, agent.agentId);
    await up;
    return `process ${reply.pid} on ${agent.hostname} (agent ${agent.agentId})`;
  }

  /** Asks the actor's agent to SIGKILL its process. */
  async stop(actorId: string): Promise<void> {
    const agentId = this.#where.get(actorId);
    if (!agentId || this.nc.isClosed()) return;
    this.#where.delete(actorId);
    await this.nc.request(agentSubject(agentId, "kill"), encode({ jobId: this.jobId, actorId }), {
      timeout: 5_000,
    }).catch(() => {});
  }
}
