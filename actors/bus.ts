/**
 * The control-plane bus: every node of a job (the driver, each actor host)
 * has one address and receives the messages sent to it, in order per sender.
 *
 * @module
 */
import type { Message } from "./protocol.ts";

/** A node's connection to the job's bus. */
export interface Bus {
  /** This node's address: "driver" or an actor id. */
  readonly address: string;
  /** Sends a message; `transfer` lists objects to move rather than copy (local bus only). */
  send(to: string, msg: Message, transfer?: Transferable[]): void;
  /** Installs the handler of incoming messages. */
  onMessage(handler: (msg: Message) => void): void;
  /** Frames received that were not valid messages, dropped. */
  readonly rejectedFrames: number;
  /** Disconnects. */
  close(): Promise<void>;
}

const MESSAGE_FIELDS: Record<Message["type"], Record<string, string>> = {
  create: {
    actorId: "string",
    incarnation: "number",
    moduleUrl: "string",
    exportName: "string",
    args: "array",
    options: "object",
  },
  created: { actorId: "string", incarnation: "number", methods: "array" },
  "create-failed": { actorId: "string", incarnation: "number", error: "object" },
  call: { callId: "string", actorId: "string", method: "string", args: "array", caller: "string" },
  result: { callId: "string", ok: "boolean", startMs: "number", endMs: "number" },
  heartbeat: { actorId: "string", incarnation: "number" },
  "actor-died": { actorId: "string", reason: "string", restarting: "boolean" },
  "actor-ready": { actorId: "string" },
  group: { groupId: "string", members: "array", spec: "object" },
  lookup: { reqId: "string", name: "string", caller: "string" },
  "lookup-result": { reqId: "string" },
  "timeline-request": { reqId: "string" },
  "timeline-records": { reqId: "string", records: "array" },
  kill: {},
};

/**
 * True when `x` is an object whose fields have the given kinds: a `typeof`
 * name, or "array" or "null".
 */
export function hasFields(x: unknown, kinds: Record<string, string>): boolean {
  if (typeof x !== "object" || x === null) return false;
  for (const [key, kind] of Object.entries(kinds)) {
    const v = (x as Record<string, unknown>)[key];
    const actual = Array.isArray(v) ? "array" : v === null ? "null" : typeof v;
    if (actual !== kind) return false;
  }
  return true;
}

/** True when `x` has the shape of a {@linkcode Message}; frames that fail are dropped. */
export function isMessage(x: unknown): x is Message {
  if (typeof x !== "object" || x === null) return false;
  const type = (x as { type: string }).type;
  if (!Object.hasOwn(MESSAGE_FIELDS, type)) return false;
  return hasFields(x, MESSAGE_FIELDS[type as Message["type"]]);
}
