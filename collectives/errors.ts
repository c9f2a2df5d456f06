/**
 * Errors a collective call rejects with. They cross the boundary between the
 * communication worker and the caller as plain data ({@linkcode errorToWire},
 * {@linkcode errorFromWire}) and come back as the same classes.
 *
 * @module
 */

/**
 * A collective did not complete before its deadline.
 *
 * @example
 * ```ts
 * import { CollectiveTimeoutError } from "./errors.ts";
 * const e = new CollectiveTimeoutError("allreduce", 0, [2, 3], 500);
 * e.message; // "allreduce on rank 0 timed out after 500 ms; ranks that did not deliver: 2, 3"
 * ```
 */
export class CollectiveTimeoutError extends Error {
  /** Ranks this member was still waiting for when the deadline passed. */
  readonly missingRanks: number[];

  /**
   * Makes the error.
   *
   * @param op Name of the operation, e.g. `"alltoallv"`.
   * @param rank The rank that timed out.
   * @param missingRanks Ranks that had not delivered.
   * @param timeoutMs The deadline that passed.
   * @param tag The call's tag, when it had one.
   */
  constructor(op: string, rank: number, missingRanks: number[], timeoutMs: number, tag?: string) {
    const what = tag === undefined ? op : `${op} (tag "${tag}")`;
    const who = missingRanks.length > 0 ? missingRanks.join(", ") : "none (still sending)";
    super(
      `${what} on rank ${rank} timed out after ${timeoutMs} ms; ranks that did not deliver: ${who}`,
    );
    this.name = "CollectiveTimeoutError";
    this.missingRanks = missingRanks;
  }
}

/**
 * A member of the group died: every pending and later call of the group
 * rejects with this error.
 *
 * @example
 * ```ts
 * import { PeerDiedError } from "./errors.ts";
 * new PeerDiedError(3, "heartbeat lost").message; // "peer rank 3 died: heartbeat lost"
 * ```
 */
export class PeerDiedError extends Error {
  /** The rank that died. */
  readonly deadRank: number;

  /**
   * Makes the error.
   *
   * @param deadRank The rank that died.
   * @param reason What the runtime knows about the death.
   */
  constructor(deadRank: number, reason?: string) {
    super(`peer rank ${deadRank} died${reason ? `: ${reason}` : ""}`);
    this.name = "PeerDiedError";
    this.deadRank = deadRank;
  }
}

/**
 * The communicator was closed while the call was pending, or before it.
 *
 * @example
 * ```ts
 * import { CommunicatorClosedError } from "./errors.ts";
 * new CommunicatorClosedError("g0").message; // "communicator g0 is closed"
 * ```
 */
export class CommunicatorClosedError extends Error {
  /**
   * Makes the error.
   *
   * @param groupId The closed group.
   */
  constructor(groupId: string) {
    super(`communicator ${groupId} is closed`);
    this.name = "CommunicatorClosedError";
  }
}

/** An error as plain structured-clone data. */
export interface WireError {
  /** Class name: one of the classes above, or any other `Error` name. */
  name: string;
  /** The message. */
  message: string;
  /** `missingRanks` of a timeout. */
  missingRanks?: number[];
  /** `deadRank` of a peer death. */
  deadRank?: number;
}

/**
 * Turns an error into plain data that survives `postMessage` with its class.
 *
 * @example
 * ```ts
 * import { errorFromWire, errorToWire, PeerDiedError } from "./errors.ts";
 * errorFromWire(errorToWire(new PeerDiedError(1))) instanceof PeerDiedError; // true
 * ```
 */
export function errorToWire(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: "Error", message: String(e) };
  const w: WireError = { name: e.name, message: e.message };
  if (e instanceof CollectiveTimeoutError) w.missingRanks = e.missingRanks;
  if (e instanceof PeerDiedError) w.deadRank = e.deadRank;
  return w;
}

/** Rebuilds the error that {@linkcode errorToWire} flattened, keeping its message. */
export function errorFromWire(w: WireError): Error {
  let e: Error;
  if (w.name === "CollectiveTimeoutError") {
    e = new CollectiveTimeoutError("", 0, w.missingRanks ?? [], 0);
  } else if (w.name === "PeerDiedError") e = new PeerDiedError(w.deadRank ?? -1);
  else if (w.name === "CommunicatorClosedError") e = new CommunicatorClosedError("");
  else if (w.name === "TypeError") e = new TypeError();
  else e = new Error();
  e.name = w.name;
  e.message = w.message;
  return e;
}
