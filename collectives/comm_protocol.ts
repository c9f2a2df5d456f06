/**
 * Messages between a communicator proxy and its communication worker, and
 * the list of buffers a message may transfer.
 *
 * @module
 */

import type { WireError } from "./errors.ts";
import type { GroupSpec } from "./types.ts";

/** Communicator methods the proxy forwards to the worker. */
export type CallOp =
  | "alltoallv"
  | "allreduce"
  | "allgather"
  | "reduceScatter"
  | "broadcast"
  | "barrier"
  | "send"
  | "recv"
  | "stats";

/** From the proxy to the worker. */
export type ToComm =
  | { type: "init"; spec: GroupSpec }
  | { type: "call"; id: number; op: CallOp; args: unknown[] }
  | { type: "died"; rank: number; reason?: string }
  | { type: "clock"; sentAt: number }
  | { type: "close" };

/** From the worker to the proxy; `failed` without id is a failed init. */
export type FromComm =
  | { type: "ready" }
  | { type: "result"; id: number; value: unknown; doneAt: number }
  | { type: "clock"; sentAt: number; at: number }
  | { type: "failed"; id?: number; error: WireError }
  | { type: "closed" };

/**
 * The distinct, transferable array buffers under typed arrays in `value`
 * (a typed array, or an array of them); shared buffers are left out.
 *
 * @example
 * ```ts
 * import { buffersOf } from "./comm_protocol.ts";
 * const a = new Float32Array(4);
 * buffersOf([a.subarray(0, 2), a.subarray(2)]).length; // 1
 * ```
 */
export function buffersOf(value: unknown): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const visit = (v: unknown) => {
    if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer) out.add(v.buffer);
    else if (Array.isArray(v)) v.forEach(visit);
  };
  visit(value);
  return [...out];
}
