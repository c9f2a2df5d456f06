/**
 * The caller side of remote calls, shared by the driver and every actor host:
 * sends calls in submission order per actor, resolves refs given as
 * arguments, matches results, and holds or fails calls when an actor dies.
 *
 * @module
 */
import type { Bus } from "./bus.ts";
import { ActorDiedError, ActorNotFoundError, RemoteError } from "./errors.ts";
import { ObjectRef } from "./object_ref.ts";
import { epochMs, type Message } from "./protocol.ts";
import { type Timeline, typedBytes } from "./timeline.ts";

/** The methods of an actor class `T` (its function-valued members). */
export type Methods<T> = {
  [K in keyof T as T[K] extends (...args: any[]) => unknown ? K : never]: T[K];
};

/** An argument list where each argument may also be an ObjectRef of its type. */
export type RefArgs<A extends unknown[]> = { [I in keyof A]: A[I] | ObjectRef<A[I]> };

/**
 * A handle to a live actor: each method of the actor class, called here,
 * returns at once an {@linkcode ObjectRef} of its (awaited) result.
 */
export type ActorHandle<T> =
  & {
    [K in keyof Methods<T>]: Methods<T>[K] extends (...args: infer A) => infer R
      ? (...args: RefArgs<A>) => ObjectRef<Awaited<R>>
      : never;
  }
  & {
    /** Job-unique id of the actor. */
    readonly actorId: string;
  };

interface PendingCall {
  msg: Extract<Message, { type: "call" }>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  submitMs: number;
  bytes: number;
  attempts: number;
  sent: boolean;
}

interface ActorState {
  status: "alive" | "restarting" | "dead";
  reason: string;
  readyWaiters: { resolve: () => void; reject: (e: unknown) => void }[];
  chain: Promise<void>;
}

/** Makes and tracks remote calls of one node. */
export class CallClient {
  readonly #pending = new Map<string, PendingCall>();
  readonly #actors = new Map<string, ActorState>();
  readonly #lookups = new Map<string, (m: Extract<Message, { type: "lookup-result" }>) => void>();
  #nextId = 0;

  /** Builds the client of the node on `bus`; calls are recorded in `timeline` when given. */
  constructor(readonly bus: Bus, readonly timeline?: Timeline) {}

  #state(actorId: string): ActorState {
    let s = this.#actors.get(actorId);
    if (!s) {
      s = { status: "alive", reason: "", readyWaiters: [], chain: Promise.resolve() };
      this.#actors.set(actorId, s);
    }
    return s;
  }

  /** Submits `method(...args)` to the actor; returns its future at once. */
  call(actorId: string, method: string, args: unknown[]): ObjectRef<unknown> {
    const state = this.#state(actorId);
    const callId = `${this.bus.address}:${this.#nextId++}`;
    const submitMs = epochMs();
    const result = new Promise<unknown>((resolve, reject) => {
      const send = async () => {
        const resolved = await Promise.all(args.map((a) => a instanceof ObjectRef ? a : a));
        await this.#whenAlive(actorId);
        const msg = {
          type: "call" as const,
          callId,
          actorId,
          method,
          args: resolved,
          caller: this.bus.address,
        };
        const p: PendingCall = {
          msg,
          resolve,
          reject,
          submitMs,
          bytes: typedBytes(resolved),
          attempts: 0,
          sent: true,
        };
        this.#pending.set(callId, p);
        this.bus.send(actorId, msg);
      };
      const sent = state.chain.then(send);
      sent.catch(reject);
      state.chain = sent.catch(() => {});
    });
    return new ObjectRef(result, `${actorId}.${method}`);
  }

  #whenAlive(actorId: string): Promise<void> {
    const s = this.#state(actorId);
    if (s.status === "alive") return Promise.resolve();
    if (s.status === "dead") return Promise.reject(new ActorDiedError(actorId, s.reason));
    return new Promise((resolve, reject) => s.readyWaiters.push({ resolve, reject }));
  }

  /** Asks the driver for the actor registered under `name`. */
  lookup(name: string): Promise<{ actorId: string; methods: string[] }> {
    const reqId = `${this.bus.address}:lookup:${this.#nextId++}`;
    return new Promise((resolve, reject) => {
      this.#lookups.set(reqId, (m) => {
        if (m.actorId && m.methods) resolve({ actorId: m.actorId, methods: m.methods });
        else reject(new ActorNotFoundError(name));
      });
      this.bus.send("driver", { type: "lookup", reqId, name, caller: this.bus.address });
    });
  }

  /** Builds a handle whose methods call the actor. */
  handle<T>(actorId: string, methods: string[]): ActorHandle<T> {
    const h: Record<string, unknown> = { actorId };
    for (const m of methods) h[m] = (...args: unknown[]) => this.call(actorId, m, args);
    return Object.freeze(h) as ActorHandle<T>;
  }

  /** Handles results and actor life-cycle events; returns false for other messages. */
  handleMessage(msg: Message): boolean {
    switch (msg.type) {
      case "result":
        this.#onResult(msg);
        return true;
      case "actor-died":
        this.#onDied(msg);
        return true;
      case "actor-ready":
        this.#onReady(msg.actorId);
        return true;
      case "lookup-result":
        this.#lookups.get(msg.reqId)?.(msg);
        this.#lookups.delete(msg.reqId);
        return true;
      default:
        return false;
    }
  }

  #onResult(msg: Extract<Message, { type: "result" }>): void {
    const p = this.#pending.get(msg.callId);
    if (!p) return;
    this.#pending.delete(msg.callId);
    this.timeline?.add({
      callId: msg.callId,
      caller: this.bus.address,
      actor: p.msg.actorId,
      method: p.msg.method,
      submitMs: p.submitMs,
      startMs: msg.startMs,
      endMs: msg.endMs,
      bytes: p.bytes,
      ok: msg.ok,
    });
    if (msg.ok) p.resolve(msg.value);
    else {
      const e = msg.error ?? { name: "Error", message: "unknown remote error", stack: "" };
      p.reject(new RemoteError(e.name, e.message, e.stack));
    }
  }

  #onDied(msg: Extract<Message, { type: "actor-died" }>): void {
    const s = this.#state(msg.actorId);
    s.status = msg.restarting ? "restarting" : "dead";
    s.reason = msg.reason;
    for (const [id, p] of this.#pending) {
      if (p.msg.actorId !== msg.actorId || !p.sent) continue;
      if (msg.restarting && p.attempts < (msg.maxTaskRetries ?? 0)) {
        p.attempts++;
        p.sent = false;
      } else {
        this.#pending.delete(id);
        p.reject(new ActorDiedError(msg.actorId, msg.reason));
      }
    }
    if (!msg.restarting) {
      for (const w of s.readyWaiters.splice(0)) {
        w.reject(new ActorDiedError(msg.actorId, msg.reason));
      }
    }
  }

  #onReady(actorId: string): void {
    const s = this.#state(actorId);
    s.status = "alive";
    // Re-submit held calls first, in their original order, then release new ones.
    for (const p of this.#pending.values()) {
      if (p.msg.actorId !== actorId || p.sent) continue;
      p.sent = true;
      this.bus.send(actorId, p.msg);
    }
    for (const w of s.readyWaiters.splice(0)) w.resolve();
  }

  /** Fails every unfinished call (used at shutdown). */
  failAll(reason: string): void {
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      p.reject(new ActorDiedError(p.msg.actorId, reason));
    }
    for (const [actorId, s] of this.#actors) {
      s.status = "dead";
      s.reason = reason;
      for (const w of s.readyWaiters.splice(0)) w.reject(new ActorDiedError(actorId, reason));
    }
  }
}
