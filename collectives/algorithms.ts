/**
 * The collective algorithms, written once over a {@linkcode Pipe}: the
 * point-to-point view of one call. Reductions run as a ring reduce-scatter
 * then ring all-gather, pipelined in segments (bandwidth-optimal: each rank
 * sends `(n-1)/n` of the data per phase); all-to-all and all-gather send
 * straight to each peer; broadcast runs down n-1 pipelined chains.
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
  /**
   * Sends `data` (taking ownership) to `dst`, on stream `stream` of the call
   * (default 0): order holds per (source, destination, stream).
   */
  send(dst: number, data: Elem, stream?: number): Promise<void>;
  /** The next array from `src` on stream `stream` (default 0). */
  recv(src: number, stream?: number): Promise<Elem>;
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

/** Sends in flight, awaited together; a failure before then is not left unhandled. */
class Sends {
  #all: Promise<void>[] = [];

  /** Keeps `send` to await with the rest. */
  add(send: Promise<void>): void {
    send.catch(() => {}); // awaited in all(); a failure before then must not go unhandled
    this.#all.push(send);
  }

  /** Resolves once every send has; rejects with the first failure. */
  async all(): Promise<void> {
    await Promise.all(this.#all);
  }
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
  const sends = new Sends();
  const send = (data: Elem) => sends.add(p.send(next, data));
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
  await sends.all();
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
const CHAIN_SEGMENT_BYTES = 16 << 10;
const CHAIN_MAX_SEGMENTS = 64;

/**
 * Segments of a chain broadcast of `length` elements: the last segment
 * leaves the root after `segments` segment times and reaches the end of
 * its chain n-2 segment times later, so more segments drain the chains
 * sooner (64 keep a 1 MiB broadcast of 4 ranks within 97% of the link's
 * time). In one chain, where every rank forwards all bytes, segments of
 * 16 KiB measured worse over NATS than 32 KiB ones (each late frame held
 * up the rest of the chain for good); down n-1 chains they measured better.
 */
function chainSegments(length: number): number {
  return Math.min(CHAIN_MAX_SEGMENTS, Math.max(1, Math.floor((length * 4) / CHAIN_SEGMENT_BYTES)));
}

/**
 * Root's array on every rank, down n-1 pipelined chains from `root`: the
 * root sends a small header (length, segments, element type) to every rank,
 * then segment s down chain `s mod (n-1)`, which visits the other ranks in
 * ring order from the `(s mod (n-1))`-th of them; each rank forwards every
 * segment as soon as it arrives. The root's egress carries the bytes once
 * (a tree would make it send log2(n) copies) and every other rank's only
 * `(n-2)/(n-1)` of them, so a rank whose forwarding was held up (a late
 * frame, a busy thread) catches up instead of holding up the rest of the
 * chain for good, as it would in one chain where every link runs full.
 */
export async function broadcast<T extends Elem>(p: Pipe, data: T | null, root: number): Promise<T> {
  const n = p.size;
  const v = mod(p.rank - root, n);
  if (v === 0 && !data) throw new TypeError("broadcast: the root must pass its array");
  if (n === 1) return data!;
  const chains = n - 1;
  /** The rank at position `i` of chain `c` (the root is position -1). */
  const rankAt = (c: number, i: number) => i < 0 ? root : mod(root + 1 + mod(c + i, chains), n);
  const sends = new Sends();
  const header = chains; // the header's stream: none of the chains'
  const head = v === 0
    ? Int32Array.of(data!.length, chainSegments(data!.length), data instanceof Float32Array ? 1 : 0)
    : await p.recv(root, header);
  if (!(head instanceof Int32Array && head.length === 3 && head[0] >= 0 && head[1] >= 1)) {
    throw new TypeError("broadcast: malformed header from the root");
  }
  const [length, segments, isFloat] = head;
  if (v === 0) {
    for (let c = 0; c < chains; c++) sends.add(p.send(rankAt(c, 0), head.slice(), header));
  }
  const off = blockOffsets(evenCounts(length, segments));
  if (v === 0) {
    for (let s = 0; s < segments; s++) {
      sends.add(p.send(rankAt(s % chains, 0), data!.slice(off[s], off[s + 1]), s % chains));
    }
    await sends.all();
    return data!;
  }
  const out = (isFloat ? new Float32Array(length) : new Int32Array(length)) as T;
  await Promise.all(Array.from({ length: Math.min(chains, segments) }, async (_, c) => {
    const at = mod(v - 1 - c, chains);
    const [prev, next] = [rankAt(c, at - 1), at + 1 < chains ? rankAt(c, at + 1) : -1];
    for (let s = c; s < segments; s += chains) {
      const seg = await p.recv(prev, c);
      if (seg.constructor !== out.constructor || seg.length !== off[s + 1] - off[s]) {
        throw new TypeError(
          `broadcast: segment ${s} is a ${seg.constructor.name} of ${seg.length}, ` +
            `expected a ${out.constructor.name} of ${off[s + 1] - off[s]}`,
        );
      }
      out.set(seg, off[s]);
      if (next >= 0) sends.add(p.send(next, seg, c));
    }
  }));
  await sends.all();
  return out;
}
