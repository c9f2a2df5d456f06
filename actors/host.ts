/**
 * The actor host: runs inside an actor's Worker or process, builds the actor
 * from its module URL and export name, and executes calls in submission
 * order (or up to maxConcurrency at once). It imports only the module it was
 * started for, under its module roots (see `module_roots.ts`).
 *
 * @module
 */
import type { Bus } from "./bus.ts";
import { CallClient } from "./client.ts";
import { setActorContext } from "./context.ts";
import { GroupRegistry } from "./groups.ts";
import { epochMs, type HostOptions, type Message, toWireError } from "./protocol.ts";
import { Timeline } from "./timeline.ts";
import { checkModuleUrl, isUnderRoots, type ModuleGrant, toModuleRoots } from "./module_roots.ts";

/** Method names of an instance, walking its prototype chain. */
function methodNames(instance: object): string[] {
  const names = new Set<string>();
  for (
    let p = Object.getPrototypeOf(instance);
    p && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    for (const k of Object.getOwnPropertyNames(p)) {
      if (k !== "constructor" && typeof (instance as Record<string, unknown>)[k] === "function") {
        names.add(k);
      }
    }
  }
  return [...names];
}

/** Hosts one actor instance on a node. */
export class ActorHost {
  readonly client: CallClient;
  readonly groups: GroupRegistry;
  #instance: Record<string, unknown> | null = null;
  #options: HostOptions = { maxConcurrency: 1 };
  #running = 0;
  #createAccepted = false;
  #refusedCreates = 0;
  readonly #grant: ModuleGrant;
  readonly #queue: Extract<Message, { type: "call" }>[] = [];

  /**
   * Builds the host of actor `actorId` on `bus`; `exit` ends the Worker or
   * process. `grant`: the module this host was started for and the roots it
   * must lie under, from whoever started it (see `module_roots.ts`); a
   * "create" naming anything else is refused. `natsServers`: the servers this
   * actor's process uses (those of its host's agent); its NATS collective
   * groups connect to them rather than to the driver's, so that on a cluster
   * of routed servers each host keeps to its own.
   */
  constructor(
    readonly bus: Bus,
    readonly actorId: string,
    readonly exit: () => void,
    grant: ModuleGrant,
    readonly natsServers?: string[],
  ) {
    this.#grant = {
      moduleUrl: checkModuleUrl(grant.moduleUrl),
      moduleRoots: toModuleRoots(grant.moduleRoots),
    };
    this.client = new CallClient(bus, new Timeline());
    this.groups = new GroupRegistry(actorId);
    bus.onMessage((m) => this.#onMessage(m));
  }

  /** "create" messages refused: a module this host was not started for, or a second create. */
  get refusedCreates(): number {
    return this.#refusedCreates;
  }

  /** Why `msg` must not be run, or undefined when it is the create this host was started for. */
  #refusal(msg: Extract<Message, { type: "create" }>): string | undefined {
    const who = `actor ${this.actorId}`;
    let href: string;
    try {
      href = checkModuleUrl(msg.moduleUrl);
    } catch (e) {
      return `${who} refuses the create: ${(e as Error).message}`;
    }
    const { moduleUrl, moduleRoots } = this.#grant;
    if (href !== moduleUrl) {
      return `${who} refuses actor module ${href}: it was started for ${moduleUrl} only`;
    }
    if (!isUnderRoots(href, moduleRoots)) {
      return `${who} refuses actor module ${href}: outside its module roots (${
        moduleRoots.join(", ")
      })`;
    }
    if (this.#createAccepted) return `${who} refuses a second create: its actor is built already`;
    return undefined;
  }

  #onMessage(msg: Message): void {
    if (this.client.handleMessage(msg)) {
      if (msg.type === "actor-died") this.groups.memberDied(msg.actorId, msg.reason);
      return;
    }
    switch (msg.type) {
      case "create":
        this.#create(msg);
        break;
      case "call":
        this.#queue.push(msg);
        this.#pump();
        break;
      case "group":
        this.groups.add(
          msg.groupId,
          msg.members,
          this.natsServers && msg.spec.kind === "nats"
            ? { ...msg.spec, servers: this.natsServers }
            : msg.spec,
        );
        break;
      case "timeline-request":
        this.bus.send("driver", {
          type: "timeline-records",
          reqId: msg.reqId,
          records: this.client.timeline!.records,
        });
        break;
      case "kill":
        this.exit();
        break;
    }
  }

  async #create(msg: Extract<Message, { type: "create" }>): Promise<void> {
    const refusal = this.#refusal(msg);
    if (refusal !== undefined) {
      // Refused before import(): nothing named by a message is fetched or run.
      this.#refusedCreates++;
      this.bus.send("driver", {
        type: "create-failed",
        actorId: this.actorId,
        incarnation: msg.incarnation,
        error: { name: "Error", message: refusal, stack: "" },
        refused: true,
      });
      return;
    }
    this.#createAccepted = true;
    try {
      const mod = await import(this.#grant.moduleUrl);
      const cls = mod[msg.exportName];
      if (typeof cls !== "function") {
        throw new TypeError(`${msg.moduleUrl} has no exported class ${msg.exportName}`);
      }
      this.#options = msg.options;
      if (msg.options.timelineCapacity !== undefined) {
        this.client.timeline!.capacity = msg.options.timelineCapacity;
      }
      setActorContext({
        actorId: this.actorId,
        name: msg.options.name,
        device: msg.options.device,
        incarnation: msg.incarnation,
        client: this.client,
        groups: this.groups,
      });
      this.#instance = new cls(...msg.args);
      const methods = methodNames(this.#instance!);
      this.bus.send("driver", {
        type: "created",
        actorId: this.actorId,
        incarnation: msg.incarnation,
        methods,
      });
      this.#pump();
    } catch (e) {
      this.bus.send("driver", {
        type: "create-failed",
        actorId: this.actorId,
        incarnation: msg.incarnation,
        error: toWireError(e),
      });
    }
  }

  #pump(): void {
    if (!this.#instance) return;
    while (this.#queue.length > 0 && this.#running < this.#options.maxConcurrency) {
      const msg = this.#queue.shift()!;
      this.#running++;
      this.#run(msg).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }

  async #run(msg: Extract<Message, { type: "call" }>): Promise<void> {
    const startMs = epochMs();
    let reply: Extract<Message, { type: "result" }>;
    try {
      const fn = this.#instance![msg.method];
      if (typeof fn !== "function") throw new TypeError(`actor has no method ${msg.method}`);
      const value = await (fn as (...a: unknown[]) => unknown).apply(this.#instance, msg.args);
      reply = { type: "result", callId: msg.callId, ok: true, value, startMs, endMs: epochMs() };
    } catch (e) {
      reply = {
        type: "result",
        callId: msg.callId,
        ok: false,
        error: toWireError(e),
        startMs,
        endMs: epochMs(),
      };
    }
    try {
      this.bus.send(msg.caller, reply);
    } catch (e) {
      const error = toWireError(e);
      error.message = `result of ${msg.method} could not be sent: ${error.message}`;
      this.bus.send(msg.caller, { ...reply, ok: false, value: undefined, error });
    }
  }
}
