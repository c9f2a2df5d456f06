/**
 * Frames of the `nats` transport: a 4-byte big-endian header length, a
 * msgpack header, then raw array bytes (one chunk of a message). Decoding
 * never throws: anything malformed comes back as `null`.
 *
 * @module
 */

import { pack, unpack } from "msgpackr";

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

/**
 * Builds one frame from a header and a chunk of payload.
 *
 * @example
 * ```ts
 * import { decodeFrame, encodeFrame } from "./frame.ts";
 * const f = encodeFrame({ k: 1, j: "job", g: "g", s: 0, a: 10 });
 * decodeFrame(f)?.header.k; // 1
 * ```
 */
export function encodeFrame(header: Header, payload?: Uint8Array): Uint8Array {
  const h = pack(header);
  const out = new Uint8Array(4 + h.length + (payload?.length ?? 0));
  new DataView(out.buffer).setUint32(0, h.length);
  out.set(h, 4);
  if (payload) out.set(payload, 4 + h.length);
  return out;
}

/** The header length `encodeFrame` produces for `header`, without building the frame. */
export function headerBytes(header: Header): number {
  return 4 + pack(header).length;
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

/** Splits a frame into header and payload; `null` when malformed. */
export function decodeFrame(frame: Uint8Array): { header: Header; payload: Uint8Array } | null {
  if (frame.length < 4) return null;
  const len = new DataView(frame.buffer, frame.byteOffset, frame.length).getUint32(0);
  if (4 + len > frame.length) return null;
  let header: unknown;
  try {
    header = unpack(frame.subarray(4, 4 + len));
  } catch {
    return null;
  }
  return valid(header) ? { header, payload: frame.subarray(4 + len) } : null;
}
