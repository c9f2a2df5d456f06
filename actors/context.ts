/**
 * What code running inside an actor can learn and use: its own id and
 * device, handles to named actors, and the collective groups it belongs to.
 *
 * @module
 */
import type { ActorHandle, CallClient } from "./client.ts";
import type { GroupCommunicator, GroupRegistry } from "./groups.ts";
import type { DeviceSpec } from "./protocol.ts";
import { RuntimeStateError } from "./errors.ts";

/** What code running inside an actor can learn of it. */
export interface ActorContext {
  /** Job-unique id of this actor. */
  actorId: string;
  /** Name the actor was registered under, if any. */
  name?: string;
  /** Compute device handed to this actor. */
  device?: DeviceSpec;
  /** How many times this actor was (re)started; 0 for the first. */
  incarnation: number;
}

/** The runtime's own view of the actor: its context and the node's machinery. */
export interface HostContext extends ActorContext {
  /** The node's call client (calls from this actor to others). */
  client: CallClient;
  /** The collective groups this actor was made a member of. */
  groups: GroupRegistry;
}

let current: HostContext | null = null;

/** Set by the actor host when it creates the actor instance. */
export function setActorContext(ctx: HostContext): void {
  current = ctx;
}

/** The context of the actor this code runs in; throws outside an actor. */
export function actorContext(): ActorContext {
  return hostContext();
}

/** The runtime's view of the actor this code runs in; throws outside an actor. */
export function hostContext(): HostContext {
  if (!current) throw new RuntimeStateError("actorContext() called outside an actor");
  return current;
}

/** True when this code runs inside an actor host. */
export function insideActor(): boolean {
  return current !== null;
}

/** A handle to a named actor, from inside another actor. */
export async function lookupActor<T>(client: CallClient, name: string): Promise<ActorHandle<T>> {
  const { actorId, methods } = await client.lookup(name);
  return client.handle<T>(actorId, methods);
}

/**
 * Joins collective group `groupId`, made by the driver with `createGroup`;
 * returns this actor's communicator in it.
 *
 * @example
 * ```ts ignore
 * class Rank {
 *   async sum(x: Float32Array) {
 *     const comm = await joinGroup("ranks");
 *     return await comm.allreduce(x, "sum");
 *   }
 * }
 * ```
 */
export function joinGroup(groupId: string, timeoutMs?: number): Promise<GroupCommunicator> {
  return hostContext().groups.join(groupId, timeoutMs);
}
