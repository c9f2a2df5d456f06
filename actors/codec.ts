/**
 * Encoding of bus messages for byte transports: msgpackr (typed arrays keep
 * their type) and chunking of messages larger than the transport's payload
 * limit, with reassembly on the receiving side.
 *
 * @module
 */
import { Packr } from "msgpackr";

const packr = new Packr({ moreTypes: true, useRecords: false });

/** `bytes` random bytes as lowercase hex (tokens, job secrets, nonces). */
export function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Serializes a message (typed arrays round-trip with their type). */
export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Deserializes a message made by {@linkcode encode}. */
export function decode(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

const WHOLE = 0;
const CHUNK = 1;
/** Bytes of a chunk header: kind u8, pad u8x3, sender u32, message u32, index u32, count u32. */
const CHUNK_HEADER = 20;

/** Splits messages into frames of at most `maxFrame` bytes. */
export class Chunker {
  #nextMessage = 0;
  readonly #sender = crypto.getRandomValues(new Uint32Array(1))[0];

  /** Builds a chunker for frames of at most `maxFrame` bytes. */
  constructor(readonly maxFrame: number) {
    if (maxFrame <= CHUNK_HEADER * 2) throw new RangeError(`maxFrame too small: ${maxFrame}`);
  }

  /** The frames that carry `payload`, in order. */
  frames(payload: Uint8Array): Uint8Array[] {
    if (payload.byteLength + 1 <= this.maxFrame) {
      const f = new Uint8Array(payload.byteLength + 1);
      f[0] = WHOLE;
      f.set(payload, 1);
      return [f];
    }
    const body = this.maxFrame - CHUNK_HEADER;
    const count = Math.ceil(payload.byteLength / body);
    const message = this.#nextMessage++ >>> 0;
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const part = payload.subarray(i * body, Math.min(payload.byteLength, (i + 1) * body));
      const f = new Uint8Array(CHUNK_HEADER + part.byteLength);
      const view = new DataView(f.buffer);
      f[0] = CHUNK;
      view.setUint32(4, this.#sender, true);
      view.setUint32(8, message, true);
      view.setUint32(12, i, true);
      view.setUint32(16, count, true);
      f.set(part, CHUNK_HEADER);
      out.push(f);
    }
    return out;
  }
}

/** A frame that could not be understood; counted and dropped by the receiver. */
export class FrameError extends Error {
  /** Builds the error with a one-line reason. */
  constructor(reason: string) {
    super(reason);
    this.name = "FrameError";
  }
}

/** Reassembles chunked messages; partial messages are bounded in number and size. */
export class Reassembler {
  readonly #partial = new Map<string, { parts: Uint8Array[]; got: number; bytes: number }>();

  /** Builds a reassembler holding at most `maxPending` partial messages of `maxBytes` each. */
  constructor(readonly maxPending = 256, readonly maxBytes = 1 << 30) {}

  /** Feeds one frame; returns the payload when a message is complete, else null. Throws FrameError. */
  push(frame: Uint8Array): Uint8Array | null {
    if (frame.byteLength < 1) throw new FrameError("empty frame");
    if (frame[0] === WHOLE) return frame.subarray(1);
    if (frame[0] !== CHUNK) throw new FrameError(`unknown frame kind ${frame[0]}`);
    if (frame.byteLength < CHUNK_HEADER) throw new FrameError("truncated chunk header");
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const key = `${view.getUint32(4, true)}:${view.getUint32(8, true)}`;
    const index = view.getUint32(12, true);
    const count = view.getUint32(16, true);
    if (count < 2 || index >= count || count > this.maxBytes / 16) {
      throw new FrameError(`bad chunk index ${index} of ${count}`);
    }
    let entry = this.#partial.get(key);
    if (!entry) {
      if (this.#partial.size >= this.maxPending) {
        const oldest = this.#partial.keys().next().value!;
        this.#partial.delete(oldest);
      }
      entry = { parts: new Array(count), got: 0, bytes: 0 };
      this.#partial.set(key, entry);
    }
    if (entry.parts.length !== count) throw new FrameError("chunk count changed mid-message");
    if (entry.parts[index]) throw new FrameError(`duplicate chunk ${index}`);
    const body = frame.subarray(CHUNK_HEADER);
    entry.bytes += body.byteLength;
    if (entry.bytes > this.maxBytes) {
      this.#partial.delete(key);
      throw new FrameError(`message over ${this.maxBytes} bytes`);
    }
    entry.parts[index] = body;
    if (++entry.got < count) return null;
    this.#partial.delete(key);
    const out = new Uint8Array(entry.bytes);
    let at = 0;
    for (const p of entry.parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}
