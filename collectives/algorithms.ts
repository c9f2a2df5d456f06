/**
 * The collective algorithms, written once over a {@linkcode Pipe}: the
 * point-to-point view of one call. Reductions run as a ring reduce-scatter
 * then ring all-gather, pipelined in segments (bandwidth-optimal: each rank
 * sends `(n-1)/n` of the data per phase); all-to-all and all-gather send
 * straight to each peer; broadcast runs down a pipelined chain.
 *
 * @module
 */

import { owned } from "./transport.ts";
import type { Elem, ReduceOp } from "./types.ts";

/** Point-to-point within one call: frames go under the call's own tag. */
export interface Pipe {
  /** This rank. */
  readonly rank: number;
  /** Number of ranks. */
  readonly size: number;
  /** Sends `data` (taking ownership) to `dst`. */
  send(dst: number, data: Elem): Promise<void>;
  /** The next array from `src`. */
  recv(src: number): Promise<Elem>;
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/**
 * `parts[j]` goes to rank j; result `[i]` came from rank i. Sends start at
 * the next rank so that not every rank hits rank 0 first.
 */
export async function alltoallv<T extends Elem>(p: Pipe, parts: T[]): Promise<T[]> {
  if (parts.length !== p.size) {
    throw new TypeError(`alltoallv needs ${p.size} parts, got ${parts.length}`);
  }
  const out = new Array<T>(p.size);
  out[p.rank] = parts[p.rank];
  const work: Promise<void>[] = [];
  for (let k = 1; k < p.size; k++) {
    const dst = mod(p.rank + k, p.size);
    const src = mod(p.rank - k, p.size);
    work.push(p.send(dst, owned(parts[dst])));
    work.push(p.recv(src).then((d) => void (out[src] = d as T)));
  }
  await Promise.all(work);
  return out;
}

/** Offsets of contiguous blocks: block r is `[off[r], off[r + 1])`. */
export function blockOffsets(counts: number[]): number[] {
  const off = [0];
  for (const c of counts) off.push(off[off.length - 1] + c);
  return off;
}

/** An equal split of `length` elements into `n` blocks (the first ones one larger). */
export function evenCounts(length: number, n: number): number[] {
  return Array.from({ length: n }, (_, r) => Math.floor(length / n) + (r < length % n ? 1 : 0));
}

/** Smallest ring segment worth its own frame, in bytes. */
export const MIN_SEGMENT_BYTES = 128 << 10;
/** Most segments a ring block is cut into. */
export const MAX_SEGMENTS = 4;

/**
 * How a ring block of `length` elements is cut into segments (element counts):
 * up to {@linkcode MAX_SEGMENTS}, none under {@linkcode MIN_SEGMENT_BYTES}
 * unless the block is. Every rank cuts a block the same way, so a segment
 * can be forwarded as soon as it arrives.
 */
export function segmentCounts(length: number): number[] {
  const n = Math.min(MAX_SEGMENTS, Math.max(1, Math.floor((length * 4) / MIN_SEGMENT_BYTES)));
  return evenCounts(length, n);
}

/**
 * In-place elementwise kernels of one element type. Each type has its own
 * function literals, so every loop sees one array type (monomorphic) and
 * the type is dispatched once per call.
 */
interface Kernel<T extends Elem> {
  /** `into[i] += from[i]`. */
  add(into: T, from: T): void;
  /** `a[i] /= d` (truncating for integers). */
  div(a: T, d: number): void;
}

const F32: Kernel<Float32Array> = {
  add: (into, from) => {
    for (let i = 0; i < into.length; i++) into[i] += from[i];
  },
  div: (a, d) => {
    for (let i = 0; i < a.length; i++) a[i] /= d;
  },
};

const I32: Kernel<Int32Array> = {
  add: (into, from) => {
    for (let i = 0; i < into.length; i++) into[i] += from[i];
  },
  div: (a, d) => {
    for (let i = 0; i < a.length; i++) a[i] /= d;
  },
};

function kernelOf<T extends Elem>(a: T): Kernel<T> {
  return (a instanceof Float32Array ? F32 : I32) as unknown as Kernel<T>;
}

/**
 * The ring of a reduction over `acc` (blocks bounded by `off`), in place.
 * Step s receives block `rank - s - 2` from the previous rank, one segment
 * at a time; each segment is reduced into the received buffer (first n-1
 * steps) or stored (the all-gather steps), then that same buffer is passed
 * on to the next rank by transfer, so the links stay busy and nothing is
 * copied but the first block sent and the blocks kept. With `gather` false
 * it stops after the reduce-scatter: block `rank` of `acc` holds the
 * reduction and the other blocks are left as they were.
 */
async function ring<T extends Elem>(
  p: Pipe,
  acc: T,
  off: number[],
  op: ReduceOp,
  gather: boolean,
): Promise<void> {
  const { rank: r, size: n } = p;
  if (n === 1) return;
  const k = kernelOf(acc);
  const [next, prev] = [mod(r + 1, n), mod(r - 1, n)];
  const sends: Promise<void>[] = [];
  const send = (data: Elem) => {
    const s = p.send(next, data);
    s.catch(() => {}); // awaited below; a failure before then must not go unhandled
    sends.push(s);
  };
  const segments = function* (b: number) {
    let at = off[b];
    for (const c of segmentCounts(off[b + 1] - off[b])) yield acc.subarray(at, at += c) as T;
  };
  for (const seg of segments(mod(r - 1, n))) send(seg.slice());
  const steps = gather ? 2 * (n - 1) : n - 1;
  for (let s = 0; s < steps; s++) {
    for (const mine of segments(mod(r - s - 2, n))) {
      const got = await p.recv(prev) as T;
      if (got.constructor !== acc.constructor || got.length !== mine.length) {
        throw new TypeError(
          `reduction segment is a ${got.constructor.name} of ${got.length}, ` +
            `expected a ${acc.constructor.name} of ${mine.length}`,
        );
      }
      if (s < n - 1) k.add(got, mine);
      if (s === n - 2 && op === "mean") k.div(got, n);
      if (s >= n - 2) mine.set(got);
      if (s < steps - 1) send(got);
    }
  }
  await Promise.all(sends);
}

/**
 * Elementwise reduction, in place when `data` views its whole buffer: ring
 * reduce-scatter, then ring all-gather.
 */
export async function allreduce<T extends Elem>(p: Pipe, data: T, op: ReduceOp): Promise<T> {
  const acc = owned(data);
  await ring(p, acc, blockOffsets(evenCounts(acc.length, p.size)), op, true);
  return acc;
}

/** Reduces `data` across ranks; returns this rank's block (`counts`, or an equal split). */
export async function reduceScatter<T extends Elem>(
  p: Pipe,
  data: T,
  op: ReduceOp,
  counts?: number[],
): Promise<T> {
  if (!counts) {
    if (data.length % p.size !== 0) {
      throw new TypeError(`reduceScatter: length ${data.length} does not divide by ${p.size}`);
    }
    counts = evenCounts(data.length, p.size);
  }
  const off = blockOffsets(counts);
  if (counts.length !== p.size || off[p.size] !== data.length) {
    throw new TypeError(`reduceScatter: counts ${counts} do not cover ${data.length} elements`);
  }
  const acc = owned(data);
  await ring(p, acc, off, op, false);
  return acc.slice(off[p.rank], off[p.rank + 1]) as T;
}

/**
 * Result `[i]` is rank i's array: each rank sends its array straight to
 * every other rank. Over one egress link per rank this moves the same bytes
 * as a ring, in one hop instead of n-1.
 */
export function allgather<T extends Elem>(p: Pipe, data: T): Promise<T[]> {
  return alltoallv(
    p,
    Array.from({ length: p.size }, (_, j) => j === p.rank ? data : data.slice() as T),
  );
}

/** Smallest broadcast segment, in bytes, and the most segments a broadcast is cut into. */
const CHAIN_SEGMENT_BYTES = 32 << 10;
const CHAIN_MAX_SEGMENTS = 32;

/**
 * Segments of a chain broadcast of `length` elements: a chain of n ranks
 * takes (segments + n - 2) segment times, so more segments fill it sooner.
 */
function chainSegments(length: number): number {
  return Math.min(CHAIN_MAX_SEGMENTS, Math.max(1, Math.floor((length * 4) / CHAIN_SEGMENT_BYTES)));
}

/**
 * Root's array on every rank, along a pipelined chain from `root`: a small
 * header (length, segments, element type) goes first, then each segment is
 * forwarded as soon as it arrives, so every rank's egress carries the bytes
 * once (a tree would make the root send log2(n) copies).
 */
export async function broadcast<T extends Elem>(p: Pipe, data: T | null, root: number): Promise<T> {
  const n = p.size;
  const v = mod(p.rank - root, n);
  if (v === 0 && !data) throw new TypeError("broadcast: the root must pass its array");
  if (n === 1) return data!;
  const prev = mod(v - 1 + root, n);
  const next = v + 1 < n ? mod(v + 1 + root, n) : -1;
  const head = v === 0
    ? Int32Array.of(
      data!.length,
      chainSegments(data!.length),
      data instanceof Float32Array ? 1 : 0,
    )
    : await p.recv(prev) as Int32Array;
  const [length, segments, isFloat] = head;
  if (!(head.length === 3 && length >= 0 && segments >= 1)) {
    throw new TypeError("broadcast: malformed header from the previous rank");
  }
  const sends: Promise<void>[] = [];
  if (next >= 0) sends.push(p.send(next, head.slice()));
  const out = v === 0 ? data! : (isFloat ? new Float32Array(length) : new Int32Array(length)) as T;
  const off = blockOffsets(evenCounts(length, segments));
  for (let s = 0; s < segments; s++) {
    const seg = v === 0 ? data!.slice(off[s], off[s + 1]) : await p.recv(prev);
    if (v !== 0) out.set(seg, off[s]);
    if (next >= 0) sends.push(p.send(next, seg));
  }
  await Promise.all(sends);
  return out;
}
