/**
 * Frames of the `nats` transport: one NATS message each, whose body is raw
 * array bytes (one chunk of a message, or nothing) and whose NATS header
 * {@linkcode FRAME_HEADER} holds the frame header as JSON. Decoding never
 * throws: anything malformed comes back as `null`.
 *
 * @module
 */

import { headers, type Msg, type MsgHdrs } from "@nats-io/transport-node";

/** Element types on the wire. */
export const DTYPES = { f32: 0, i32: 1 } as const;

/** A chunk of a data message. */
export interface DataHeader {
  /** Kind: data. */
  k: 0;
  /** Job id and group id: frames of another job or group are dropped. */
  j: string;
  g: string;
  /** Source rank. */
  s: number;
  /** Tag of the message. */
  t: string;
  /** Element type (see {@linkcode DTYPES}). */
  d: number;
  /** Total payload bytes of the message, and this chunk's offset in it. */
  n: number;
  o: number;
  /** Delivery stamp of the message (link model). */
  r: number;
}

/** Flow control: the receiver consumed `a` more bytes from the addressee. */
export interface AckHeader {
  k: 1;
  j: string;
  g: string;
  s: number;
  a: number;
}

/** Rendezvous: the source is subscribed; `y` when it answers a hello. */
export interface HelloHeader {
  k: 2;
  j: string;
  g: string;
  s: number;
  y: boolean;
}

/** Any frame header. */
export type Header = DataHeader | AckHeader | HelloHeader;

/** The NATS message header that carries a frame's header. */
export const FRAME_HEADER = "Scmoe-Frame";

/** A received frame: its header and its chunk of payload. */
export interface Frame {
  header: Header;
  payload: Uint8Array;
}

/**
 * The NATS headers of a frame: `header` as JSON (which escapes every control
 * character, so it fits on one header line). The payload travels as the
 * message body, untouched: nothing is concatenated on the sending side.
 *
 * @example
 * ```ts
 * import { decodeFrame, frameHeaders } from "./frame.ts";
 * const headers = frameHeaders({ k: 1, j: "job", g: "g", s: 0, a: 10 });
 * decodeFrame({ headers, data: new Uint8Array(0) })?.header.k; // 1
 * ```
 */
export function frameHeaders(header: Header): MsgHdrs {
  const h = headers();
  h.set(FRAME_HEADER, JSON.stringify(header));
  return h;
}

/** Bytes the NATS headers of `header` take in a message (they count against max_payload). */
export function headerBytes(header: Header): number {
  const line = `${FRAME_HEADER}: ${JSON.stringify(header)}`;
  return new TextEncoder().encode(`NATS/1.0\r\n${line}\r\n\r\n`).length;
}

const isInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;

function valid(h: any): h is Header {
  if (typeof h !== "object" || h === null) return false;
  if (typeof h.j !== "string" || typeof h.g !== "string" || !isInt(h.s)) return false;
  if (h.k === 0) {
    return typeof h.t === "string" && (h.d === 0 || h.d === 1) && isInt(h.n) &&
      isInt(h.o) && typeof h.r === "number" && h.n % 4 === 0;
  }
  if (h.k === 1) return isInt(h.a);
  return h.k === 2 && typeof h.y === "boolean";
}

/** The frame of a received NATS message; `null` when malformed. Never throws. */
export function decodeFrame(msg: Pick<Msg, "headers" | "data">): Frame | null {
  let header: unknown;
  try {
    const text = msg.headers?.get(FRAME_HEADER);
    if (!text) return null;
    header = JSON.parse(text);
  } catch {
    return null;
  }
  return valid(header) ? { header, payload: msg.data } : null;
}
