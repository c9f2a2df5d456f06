/**
 * The driver side of the actor runtime: `init`, `remote`, `kill`,
 * `getActor`, `createGroup`, `timeline`, `shutdown`.
 *
 * @example
 * ```ts ignore
 * import { get, init, remote, shutdown } from "@scmoe/actors";
 * import type { Tally } from "./examples/actors.ts";
 *
 * await init({ cluster: "local" });
 * const TallyActor = remote<typeof Tally>(new URL("./examples/actors.ts", import.meta.url), "Tally");
 * const t = await TallyActor.options({ name: "tally" }).remote();
 * console.log(await get([t.add(2), t.add(3)])); // [2, 5]
 * await shutdown();
 * ```
 *
 * @module
 */
import type { LinkModel } from "../collectives/types.ts";
import { type NatsServer, startNatsServer } from "./nats_server.ts";
import { Agent } from "./agent.ts";
import type { Bus } from "./bus.ts";
import { HubBus } from "./bus_local.ts";
import { credentialsFromEnv, NatsBus, type NatsCredentials } from "./bus_nats.ts";
import { randomHex } from "./codec.ts";
import { type ActorHandle, CallClient } from "./client.ts";
import { hostContext, insideActor, lookupActor } from "./context.ts";
import {
  ActorDiedError,
  ActorNotFoundError,
  ModuleNotAllowedError,
  RemoteError,
  RuntimeStateError,
} from "./errors.ts";
import {
  checkModuleUrl,
  isUnderRoots,
  mainModuleRoot,
  PACKAGE_ROOT,
  toModuleRoots,
} from "./module_roots.ts";
import { ObjectRef } from "./object_ref.ts";
import { AgentPlacer, type Placer, WorkerPlacer } from "./placement.ts";
import type { DeviceSpec, Message } from "./protocol.ts";
import {
  type CallRecord,
  checkTimelineCapacity,
  type ChromeTrace,
  DEFAULT_TIMELINE_CAPACITY,
  Timeline,
} from "./timeline.ts";

/** Options of {@linkcode init}. */
export interface InitOptions {
  /**
   * `"local"` (default): actors are Workers of this process, no server.
   * `"nats"`: a private nats-server on loopback, actors are processes.
   * `"nats://host:port"`: join an existing NATS where host agents run.
   */
  cluster?: string;
  /**
   * `nats://` clusters: the server's token. Each credential not given here
   * is taken from the environment, as agents take theirs
   * (`SCMOE_NATS_TOKEN`, `SCMOE_NATS_USER`, `SCMOE_NATS_PASS`,
   * `SCMOE_NATS_NKEY_SEED`, `SCMOE_NATS_CREDS_FILE`), so a script run with
   * `--cluster nats://…` needs no secret on its command line.
   */
  token?: string;
  /** `nats://` clusters: the user name, when the server wants a user and password. */
  user?: string;
  /** `nats://` clusters: the password of `user`. */
  pass?: string;
  /** `nats://` clusters: an nkey seed (`SU…`), when the server authenticates by nkey. */
  nkeySeed?: string;
  /** `nats://` clusters: the path of a NATS credentials file (JWT and seed). */
  credsFile?: string;
  /** An actor process silent for this long is declared dead (default 3000 ms). */
  heartbeatTimeoutMs?: number;
  /** Interval of actor heartbeats (default 500 ms). */
  heartbeatIntervalMs?: number;
  /** How long to wait for host agents to answer (default 10 s). */
  agentWaitMs?: number;
  /**
   * Calls the timeline of each node (the driver, every actor) keeps: the most
   * recent ones, older ones being dropped, so a long run's memory stays
   * bounded (default {@linkcode DEFAULT_TIMELINE_CAPACITY}, 100 000; 0 records
   * nothing, Infinity keeps every call).
   */
  timelineCapacity?: number;
  /**
   * `nats` clusters: nodes on the same host (the driver and actor processes)
   * exchange their messages over direct loopback links authenticated by a
   * random job secret, NATS carrying only the control plane between them
   * (default true; false sends every message through nats-server).
   */
  directLinks?: boolean;
  /**
   * Folders whose modules actors may be built from, besides the package's
   * own root and the folder of `Deno.mainModule`: paths (resolved against
   * the current directory) or `file:`/`https:` folder URLs. `remote()` of a
   * module outside every root throws {@linkcode ModuleNotAllowedError}
   * before anything is spawned; any other protocol is a TypeError here. The
   * private `nats` cluster's agent takes these roots; the agents of a
   * `nats://` cluster keep their own (`deno task agent --allow-module-root`).
   * See `module_roots.ts`.
   */
  moduleRoots?: (string | URL)[];
}

/** Options of one actor, given with `ActorClass.options`. */
export interface ActorOptions {
  /** Registers the actor under a job-unique name (see {@linkcode getActor}). */
  name?: string;
  /** Times the actor is re-created with its constructor arguments after dying (default 0). */
  maxRestarts?: number;
  /** Times an unfinished call is re-submitted after a restart (default 0). */
  maxTaskRetries?: number;
  /** Calls run at once at most (default 1: submission order). */
  maxConcurrency?: number;
  /** Compute device handed to the actor. */
  device?: DeviceSpec;
  /** Agent id or host name to place the actor on (nats clusters). */
  host?: string;
}

/** A class made remote: `.remote(...args)` creates an actor and returns its handle. */
export interface ActorClass<T, A extends unknown[]> {
  /** Creates the actor; resolves when its constructor has run. */
  remote(...args: { [I in keyof A]: A[I] | ObjectRef<A[I]> }): Promise<ActorHandle<T>>;
  /** The same class with these actor options. */
  options(opts: ActorOptions): ActorClass<T, A>;
}

interface ActorRecord {
  actorId: string;
  moduleUrl: string;
  exportName: string;
  args: unknown[];
  options:
    & Required<Pick<ActorOptions, "maxRestarts" | "maxTaskRetries" | "maxConcurrency">>
    & ActorOptions;
  incarnation: number;
  restartsLeft: number;
  status: "starting" | "alive" | "restarting" | "dead";
  methods: string[];
  killed: boolean;
  lastBeat: number;
  where: string;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void, reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => [resolve, reject] = [a, b]);
  promise.catch(() => {});
  return { promise, resolve, reject };
}

function newJobId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

class Runtime {
  readonly timeline: Timeline;
  readonly client: CallClient;
  readonly actors = new Map<string, ActorRecord>();
  readonly names = new Map<string, string>();
  readonly #created = new Map<string, Deferred<string[]>>();
  readonly #up = new Map<string, Deferred<void>>();
  readonly #timelineReplies = new Map<string, (records: CallRecord[]) => void>();
  #placer!: Placer;
  #nextActor = 0;
  #monitor?: ReturnType<typeof setInterval>;
  #closing = false;
  #refusedCreates = 0;

  private constructor(
    readonly jobId: string,
    readonly bus: Bus,
    readonly kind: "local" | "nats",
    readonly opts:
      & Required<
        Pick<InitOptions, "heartbeatTimeoutMs" | "heartbeatIntervalMs" | "timelineCapacity">
      >
      & { moduleRoots: string[] },
    readonly natsCreds?: NatsCredentials,
    readonly server?: NatsServer,
    readonly agent?: Agent,
  ) {
    this.timeline = new Timeline(opts.timelineCapacity);
    this.client = new CallClient(bus, this.timeline);
    bus.onMessage((m) => this.#onMessage(m));
  }

  static async start(o: InitOptions): Promise<Runtime> {
    const cluster = o.cluster ?? "local";
    const hb = {
      heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 3000,
      heartbeatIntervalMs: o.heartbeatIntervalMs ?? 500,
      timelineCapacity: checkTimelineCapacity(o.timelineCapacity ?? DEFAULT_TIMELINE_CAPACITY),
      moduleRoots: toModuleRoots([
        PACKAGE_ROOT,
        ...[mainModuleRoot()].filter((r) => r !== undefined),
        ...(o.moduleRoots ?? []),
      ]),
    };
    if (cluster === "local") {
      const hub = new HubBus();
      const rt = new Runtime(newJobId(), hub, "local", hb);
      rt.#placer = new WorkerPlacer(hub, (id, inc, reason) => rt.#onDeath(id, inc, reason));
      return rt;
    }
    let server: NatsServer | undefined;
    let creds: NatsCredentials;
    if (cluster === "nats") {
      server = await startNatsServer();
      creds = { servers: [server.url], token: server.token };
    } else if (/^(nats|tls):\/\//.test(cluster)) {
      const { token, user, pass, nkeySeed, credsFile } = o;
      const given = { token, user, pass, nkeySeed, credsFile };
      creds = credentialsFromEnv(cluster.split(","));
      for (const [key, value] of Object.entries(given)) {
        if (value !== undefined) creds[key as keyof typeof given] = value;
      }
    } else {
      throw new TypeError(
        `init: cluster must be "local", "nats" or a nats:// URL, got "${cluster}"`,
      );
    }
    let agent: Agent | undefined;
    try {
      agent = server ? await Agent.start(creds, { moduleRoots: hb.moduleRoots }) : undefined;
      const jobId = newJobId();
      const linkSecret = o.directLinks === false ? undefined : randomHex(32);
      const bus = await NatsBus.open(
        creds,
        jobId,
        "driver",
        linkSecret ? { secret: linkSecret } : undefined,
      );
      const rt = new Runtime(jobId, bus, "nats", hb, creds, server, agent);
      rt.#placer = new AgentPlacer(
        bus.nc,
        jobId,
        hb.heartbeatIntervalMs,
        (id, inc) => rt.#awaitUp(id, inc),
        o.agentWaitMs ?? 10_000,
        linkSecret,
      );
      rt.#monitor = setInterval(
        () => rt.#checkHeartbeats(),
        Math.max(50, hb.heartbeatIntervalMs / 2),
      );
      return rt;
    } catch (e) {
      await agent?.stop();
      await server?.stop();
      throw e;
    }
  }

  #awaitUp(actorId: string, incarnation: number): Promise<void> {
    const d = deferred<void>();
    this.#up.set(`${actorId}/${incarnation}`, d);
    const timer = setTimeout(
      () => d.reject(new ActorDiedError(actorId, "process did not come up within 30 s")),
      30_000,
    );
    return d.promise.finally(() => {
      clearTimeout(timer);
      this.#up.delete(`${actorId}/${incarnation}`);
    });
  }

  #checkHeartbeats(): void {
    const now = performance.now();
    for (const rec of this.actors.values()) {
      if (rec.status !== "alive") continue;
      const silent = now - rec.lastBeat;
      if (silent > this.opts.heartbeatTimeoutMs) {
        this.#onDeath(rec.actorId, rec.incarnation, `no heartbeat for ${Math.round(silent)} ms`);
      }
    }
  }

  #onMessage(msg: Message): void {
    switch (msg.type) {
      case "actor-died": {
        const rec = this.actors.get(msg.actorId);
        if (rec) this.#onDeath(msg.actorId, msg.incarnation ?? rec.incarnation, msg.reason);
        return;
      }
      case "heartbeat": {
        const rec = this.actors.get(msg.actorId);
        if (rec && rec.incarnation === msg.incarnation) rec.lastBeat = performance.now();
        this.#up.get(`${msg.actorId}/${msg.incarnation}`)?.resolve();
        return;
      }
      case "created":
        this.#created.get(`${msg.actorId}/${msg.incarnation}`)?.resolve(msg.methods);
        return;
      case "create-failed":
        // A refusal answers a create the host was not started for: never the driver's own.
        if (msg.refused) this.#refusedCreates++;
        else {
          this.#created.get(`${msg.actorId}/${msg.incarnation}`)?.reject(
            new RemoteError(msg.error.name, msg.error.message, msg.error.stack),
          );
        }
        return;
      case "timeline-records":
        this.#timelineReplies.get(msg.reqId)?.(msg.records);
        return;
      case "lookup": {
        const actorId = this.names.get(msg.name);
        const rec = actorId ? this.actors.get(actorId) : undefined;
        this.bus.send(msg.caller, {
          type: "lookup-result",
          reqId: msg.reqId,
          actorId: rec && rec.status !== "dead" ? rec.actorId : undefined,
          methods: rec?.methods,
        });
        return;
      }
      default:
        this.client.handleMessage(msg);
    }
  }

  /** Starts one incarnation of the actor and runs its constructor. */
  async #launch(rec: ActorRecord): Promise<void> {
    const key = `${rec.actorId}/${rec.incarnation}`;
    const created = deferred<string[]>();
    this.#created.set(key, created);
    try {
      rec.where = await this.#placer.start({
        actorId: rec.actorId,
        incarnation: rec.incarnation,
        device: rec.options.device,
        host: rec.options.host,
        moduleUrl: rec.moduleUrl,
        exportName: rec.exportName,
        moduleRoots: this.opts.moduleRoots,
      });
      rec.lastBeat = performance.now();
      this.bus.send(rec.actorId, {
        type: "create",
        actorId: rec.actorId,
        incarnation: rec.incarnation,
        moduleUrl: rec.moduleUrl,
        exportName: rec.exportName,
        args: rec.args,
        options: {
          maxConcurrency: rec.options.maxConcurrency,
          device: rec.options.device,
          name: rec.options.name,
          timelineCapacity: this.opts.timelineCapacity,
        },
      });
      rec.methods = await created.promise;
      rec.status = "alive";
      rec.lastBeat = performance.now();
    } catch (e) {
      // A placement that failed (an agent refused the spawn) awaits no heartbeat any more.
      this.#up.get(key)?.reject(e);
      await this.#placer.stop(rec.actorId);
      throw e;
    } finally {
      this.#created.delete(key);
    }
  }

  /** "create" messages refused by actor hosts (see `module_roots.ts`). */
  get refusedCreates(): number {
    return this.#refusedCreates;
  }

  async createActor(url: string, exportName: string, args: unknown[], options: ActorOptions) {
    const moduleUrl = checkModuleUrl(url);
    if (!isUnderRoots(moduleUrl, this.opts.moduleRoots)) {
      throw new ModuleNotAllowedError(moduleUrl, this.opts.moduleRoots);
    }
    if (options.name !== undefined) {
      const holder = this.names.get(options.name);
      if (holder && this.actors.get(holder)?.status !== "dead") {
        throw new TypeError(`an actor named "${options.name}" already exists in this job`);
      }
    }
    for (const k of ["maxRestarts", "maxTaskRetries"] as const) {
      const v = options[k];
      if (v !== undefined && !(Number.isInteger(v) && v >= 0) && v !== Infinity) {
        throw new RangeError(`actor option ${k} must be a non-negative integer, got ${v}`);
      }
    }
    if (
      options.maxConcurrency !== undefined &&
      !(Number.isInteger(options.maxConcurrency) && options.maxConcurrency >= 1)
    ) {
      throw new RangeError(
        `actor option maxConcurrency must be an integer >= 1, got ${options.maxConcurrency}`,
      );
    }
    const rec: ActorRecord = {
      actorId: `a${this.#nextActor++}`,
      moduleUrl,
      exportName,
      args: await Promise.all(args.map((a) => a instanceof ObjectRef ? a : a)),
      options: { maxRestarts: 0, maxTaskRetries: 0, maxConcurrency: 1, ...options },
      incarnation: 0,
      restartsLeft: options.maxRestarts ?? 0,
      status: "starting",
      methods: [],
      killed: false,
      lastBeat: performance.now(),
      where: "",
    };
    this.actors.set(rec.actorId, rec);
    if (options.name !== undefined) this.names.set(options.name, rec.actorId);
    try {
      await this.#launch(rec);
    } catch (e) {
      rec.status = "dead";
      throw e;
    }
    return this.client.handle(rec.actorId, rec.methods);
  }

  #broadcast(msg: Message): void {
    this.client.handleMessage(msg);
    for (const rec of this.actors.values()) {
      if (rec.status === "alive" && rec.actorId !== (msg as { actorId?: string }).actorId) {
        this.bus.send(rec.actorId, msg);
      }
    }
  }

  async #onDeath(actorId: string, incarnation: number, reason: string): Promise<void> {
    const rec = this.actors.get(actorId);
    if (!rec || rec.incarnation !== incarnation || rec.status !== "alive" || this.#closing) return;
    // Decide and tell everyone first (the first report wins; later ones, such as the
    // agent's exit report of the process stopped below, find the actor no longer alive).
    const restarting = !rec.killed && rec.restartsLeft > 0;
    rec.status = restarting ? "restarting" : "dead";
    this.#broadcast({
      type: "actor-died",
      actorId,
      reason,
      restarting,
      maxTaskRetries: rec.options.maxTaskRetries,
      incarnation,
    });
    await this.#placer.stop(actorId);
    if (!restarting) return;
    rec.restartsLeft--;
    rec.incarnation++;
    try {
      await this.#launch(rec);
      this.#broadcast({ type: "actor-ready", actorId });
    } catch (e) {
      rec.status = "dead";
      const why = e instanceof Error ? e.message : String(e);
      this.#broadcast({
        type: "actor-died",
        actorId,
        reason: `restart failed: ${why}`,
        restarting: false,
      });
    }
  }

  /**
   * The calls recorded by this driver and by the live actors (calls between
   * actors are recorded by their caller; each keeps its most recent
   * `timelineCapacity`); actors that do not answer within `waitMs` are left out.
   */
  async gatherTimeline(waitMs = 2000): Promise<Timeline> {
    const all = new Timeline(Infinity);
    all.merge(this.timeline.records);
    const live = [...this.actors.values()].filter((r) => r.status === "alive");
    await Promise.all(live.map((rec) =>
      new Promise<void>((resolve) => {
        const reqId = `timeline:${rec.actorId}:${this.#nextActor}:${performance.now()}`;
        const timer = setTimeout(() => {
          this.#timelineReplies.delete(reqId);
          resolve();
        }, waitMs);
        this.#timelineReplies.set(reqId, (records) => {
          clearTimeout(timer);
          this.#timelineReplies.delete(reqId);
          all.merge(records);
          resolve();
        });
        this.bus.send(rec.actorId, { type: "timeline-request", reqId });
      })
    ));
    return all;
  }

  kill(actorId: string): Promise<void> {
    const rec = this.actors.get(actorId);
    if (!rec) return Promise.resolve();
    rec.killed = true;
    return this.#onDeath(actorId, rec.incarnation, "killed by kill()");
  }

  groupSpecs(actorIds: string[], groupId: string, link?: LinkModel, timeoutMs?: number) {
    const size = actorIds.length;
    if (this.kind === "local") {
      const ports: (MessagePort | null)[][] = actorIds.map(() => new Array(size).fill(null));
      for (let i = 0; i < size; i++) {
        for (let j = i + 1; j < size; j++) {
          const ch = new MessageChannel();
          ports[i][j] = ch.port1;
          ports[j][i] = ch.port2;
        }
      }
      return actorIds.map((_, rank) => ({
        spec: { kind: "local", groupId, rank, size, ports: ports[rank], link, timeoutMs },
        transfer: ports[rank].filter((p): p is MessagePort => p !== null),
      }));
    }
    const c = this.natsCreds!;
    return actorIds.map((_, rank) => ({
      spec: {
        kind: "nats",
        groupId,
        rank,
        size,
        ...c,
        jobId: this.jobId,
        link,
        timeoutMs,
      },
      transfer: [] as Transferable[],
    }));
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#monitor);
    this.client.failAll("the runtime was shut down");
    await Promise.all([...this.actors.values()].map((r) => this.#placer.stop(r.actorId)));
    for (const rec of this.actors.values()) rec.status = "dead";
    await this.bus.close();
    await this.agent?.stop();
    await this.server?.stop();
  }
}

let runtime: Runtime | null = null;

function current(): Runtime {
  if (!runtime) throw new RuntimeStateError("the actor runtime is not running: call init() first");
  return runtime;
}

/** Starts the runtime of this driver. Throws when already started. */
export async function init(opts: InitOptions = {}): Promise<void> {
  if (runtime) throw new RuntimeStateError("init() called twice: call shutdown() first");
  runtime = await Runtime.start(opts);
}

/** True while the runtime is started. */
export function isInitialized(): boolean {
  return runtime !== null;
}

/** The job id of the running runtime (subjects are namespaced by it). */
export function jobId(): string {
  return current().jobId;
}

/** Stops every actor, server and agent this driver started. */
export async function shutdown(): Promise<void> {
  const rt = runtime;
  runtime = null;
  await rt?.close();
}

/**
 * Makes the class exported as `exportName` from `moduleUrl` remote. No code
 * travels: the actor's Worker or process imports the module itself, which
 * must lie under the module roots (see {@linkcode InitOptions.moduleRoots});
 * creating an actor of a module outside them throws
 * {@linkcode ModuleNotAllowedError}.
 */
export function remote<C extends abstract new (...args: any) => any>(
  moduleUrl: string | URL,
  exportName: string,
  options: ActorOptions = {},
): ActorClass<InstanceType<C>, ConstructorParameters<C>> {
  const url = String(moduleUrl);
  return {
    remote: async (...args) =>
      (await current().createActor(url, exportName, args, options)) as ActorHandle<InstanceType<C>>,
    options: (more) => remote<C>(url, exportName, { ...options, ...more }),
  };
}

/** Kills the actor at once; it is not restarted and its unfinished calls fail. */
export function kill(handle: { actorId: string }): Promise<void> {
  return current().kill(handle.actorId);
}

/** A handle to the actor registered under `name`, from the driver or from inside any actor. */
export async function getActor<T>(name: string): Promise<ActorHandle<T>> {
  if (insideActor()) return await lookupActor<T>(hostContext().client, name);
  const rt = current();
  const rec = rt.actors.get(rt.names.get(name) ?? "");
  if (!rec || rec.status === "dead") throw new ActorNotFoundError(name);
  return rt.client.handle<T>(rec.actorId, rec.methods);
}

/** Options of {@linkcode createGroup}. */
export interface GroupOptions {
  /** Name of the group; members join it with `joinGroup(groupId)`. */
  groupId: string;
  /** Emulated link between every pair of members. */
  link?: LinkModel;
  /** Default deadline of every collective call, in milliseconds. */
  timeoutMs?: number;
}

/**
 * Makes the actors a collective group, rank i being `handles[i]`. Each member
 * then calls `joinGroup(groupId)` to get its communicator.
 */
export function createGroup(handles: { actorId: string }[], opts: GroupOptions): void {
  const rt = current();
  const members = handles.map((h) => h.actorId);
  const specs = rt.groupSpecs(members, opts.groupId, opts.link, opts.timeoutMs);
  members.forEach((actorId, rank) => {
    const { spec, transfer } = specs[rank];
    rt.bus.send(actorId, { type: "group", groupId: opts.groupId, members, spec }, transfer);
  });
}

/**
 * Writes the calls of the job (issued by the driver or by any live actor; the
 * most recent `timelineCapacity` of each, see {@linkcode InitOptions}) as
 * Chrome trace JSON to `path`; returns the trace.
 */
export async function timeline(path?: string): Promise<ChromeTrace> {
  const trace = (await current().gatherTimeline()).toChromeTrace();
  if (path) await Deno.writeTextFile(path, JSON.stringify(trace));
  return trace;
}

/** Counters of the driver's runtime, and its module roots. */
export interface RuntimeStats {
  /** The job's id. */
  jobId: string;
  /** Frames the driver's bus received that were not valid messages, dropped. */
  rejectedFrames: number;
  /** Actors created in this job, dead ones included. */
  actors: number;
  /**
   * "create" messages actor hosts refused and reported: naming a module other
   * than the one the host was started for, or outside its roots, or a second
   * create. The driver sends none such: they were forged on the bus.
   */
  refusedCreates: number;
  /** The driver's module roots (see {@linkcode InitOptions.moduleRoots}). */
  moduleRoots: string[];
}

/** Counters of the driver: dropped frames, refused creates, and its module roots. */
export function runtimeStats(): RuntimeStats {
  const rt = current();
  return {
    jobId: rt.jobId,
    rejectedFrames: rt.bus.rejectedFrames,
    actors: rt.actors.size,
    refusedCreates: rt.refusedCreates,
    moduleRoots: [...rt.opts.moduleRoots],
  };
}

/** Servers and credentials of a NATS cluster's runtime (to start agents or tools against it). */
export function natsCredentials(): NatsCredentials {
  const creds = current().natsCreds;
  if (!creds) throw new RuntimeStateError("natsCredentials(): the runtime runs a local cluster");
  return creds;
}

/** A change of the driver's NATS connection: it dropped, or it is back with its subscriptions. */
export type BusEvent = "disconnect" | "reconnect";

/**
 * Tells `listener` each time the driver's NATS connection drops or comes back
 * (nats.js reconnects on its own and re-subscribes); never on a local
 * cluster. Listening ends when the runtime shuts down.
 */
export function onBusEvent(listener: (event: BusEvent) => void): void {
  const bus = current().bus;
  if (!(bus instanceof NatsBus)) return;
  (async () => {
    for await (const s of bus.nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect") listener(s.type);
    }
  })();
}

/** Where an actor runs now (e.g. "worker", "process 1234 on host (agent ab12cd34)"). */
export function placementOf(handle: { actorId: string }): string {
  return current().actors.get(handle.actorId)?.where ?? "";
}
