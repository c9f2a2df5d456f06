/**
 * The Ray-style actor runtime: remote actor classes, futures, named actors,
 * restarts, collective groups and a call timeline, over Workers (`local`) or
 * NATS (`nats`).
 *
 * @module
 */
export {
  type ActorClass,
  type ActorOptions,
  type BusEvent,
  createGroup,
  getActor,
  type GroupOptions,
  init,
  type InitOptions,
  isInitialized,
  jobId,
  kill,
  natsCredentials,
  onBusEvent,
  placementOf,
  remote,
  type RuntimeStats,
  runtimeStats,
  shutdown,
  timeline,
} from "./runtime.ts";
export { get, type GetOptions, ObjectRef, wait, type WaitOptions } from "./object_ref.ts";
export type { ActorHandle, Methods, RefArgs } from "./client.ts";
export type { GroupCommunicator } from "./groups.ts";
export { type ActorContext, actorContext, joinGroup } from "./context.ts";
export {
  ActorDiedError,
  ActorNotFoundError,
  GetTimeoutError,
  ModuleNotAllowedError,
  RemoteError,
  RuntimeStateError,
} from "./errors.ts";
export type { DeviceSpec } from "./protocol.ts";
export { Agent, type AgentInfo, type AgentOptions } from "./agent.ts";
export { type NatsServer, type NatsServerOptions, startNatsServer } from "./nats_server.ts";
/**
 * nats-server is not installed (`startNatsServer`, `init({ cluster: "nats" })`);
 * one line naming the fix.
 */
export { NatsServerNotFoundError } from "./nats_server.ts";
/** No NATS server answered at the URL given (refused, unknown host, no answer); one line. */
export { NatsConnectError } from "./bus_nats.ts";
export { type ChromeTrace, DEFAULT_TIMELINE_CAPACITY } from "./timeline.ts";
