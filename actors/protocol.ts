/**
 * The messages nodes of a job exchange. A node is the driver or one actor
 * host; each has one bus address ("driver" or the actor id).
 *
 * @module
 */
import type { CallRecord } from "./timeline.ts";

/** How a remote exception travels. */
export interface WireError {
  name: string;
  message: string;
  stack: string;
}

/** Per-actor options the host needs. */
export interface HostOptions {
  /** Calls run at once at most; 1 keeps submission order. */
  maxConcurrency: number;
  /** Compute device handed to the actor, like CUDA_VISIBLE_DEVICES. */
  device?: DeviceSpec;
  /** Name the actor was registered under, if any. */
  name?: string;
  /** Calls the host's timeline keeps, the most recent ones (see `InitOptions`). */
  timelineCapacity?: number;
}

/** A compute device: a tfjs backend and an index among devices of that kind. */
export interface DeviceSpec {
  /** The tfjs backend that drives the device. */
  backend: "wasm" | "cpu" | "webgpu" | "tensorflow" | "tensorflow-gpu";
  /** The device's index among the host's devices of that backend. */
  index: number;
}

/** Every message on the bus. */
export type Message =
  | {
    type: "create";
    actorId: string;
    incarnation: number;
    moduleUrl: string;
    exportName: string;
    args: unknown[];
    options: HostOptions;
  }
  | { type: "created"; actorId: string; incarnation: number; methods: string[] }
  | {
    type: "create-failed";
    actorId: string;
    incarnation: number;
    error: WireError;
    /**
     * The host refused the "create" (a module it was not started for, or
     * outside its roots, or a second one) without running anything: such a
     * report is counted by the driver and never settles a creation.
     */
    refused?: boolean;
  }
  | {
    type: "call";
    callId: string;
    actorId: string;
    method: string;
    args: unknown[];
    caller: string;
  }
  | {
    type: "result";
    callId: string;
    ok: boolean;
    value?: unknown;
    error?: WireError;
    startMs: number;
    endMs: number;
  }
  | { type: "heartbeat"; actorId: string; incarnation: number }
  | {
    type: "actor-died";
    actorId: string;
    reason: string;
    restarting: boolean;
    /** Times an unfinished call may be re-submitted after a restart. */
    maxTaskRetries?: number;
    /** The incarnation that died (reports about older ones are ignored). */
    incarnation?: number;
  }
  | { type: "actor-ready"; actorId: string }
  | { type: "group"; groupId: string; members: string[]; spec: Record<string, unknown> }
  | { type: "lookup"; reqId: string; name: string; caller: string }
  | { type: "lookup-result"; reqId: string; actorId?: string; methods?: string[] }
  | { type: "timeline-request"; reqId: string }
  | { type: "timeline-records"; reqId: string; records: CallRecord[] }
  | { type: "kill" };

/** Converts any thrown value into its wire form. */
export function toWireError(e: unknown): WireError {
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack ?? "" };
  return { name: "Error", message: String(e), stack: "" };
}

/** Wall-clock milliseconds comparable across threads and processes. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}
