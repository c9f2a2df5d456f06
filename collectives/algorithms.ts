/**
 * The collective algorithms, written once over a {@linkcode Pipe}: the
 * point-to-point view of one call. Ring reduce-scatter and ring all-gather
 * (bandwidth-optimal: each rank sends `(n-1)/n` of the data per phase),
 * direct all-to-all, binomial-tree broadcast.
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

/**
 * Ring reduce-scatter in place: afterwards block `rank` of `acc` (bounds
 * `off`) holds the reduction over all ranks; other blocks hold partial sums.
 */
export async function reduceScatterInPlace(
  p: Pipe,
  acc: Elem,
  off: number[],
  op: ReduceOp,
): Promise<void> {
  const { rank: r, size: n } = p;
  const block = (i: number) => acc.subarray(off[i], off[i + 1]);
  for (let s = 0; s < n - 1; s++) {
    const out = block(mod(r - s - 1, n)).slice();
    const into = block(mod(r - s - 2, n));
    const [, got] = await Promise.all([p.send(mod(r + 1, n), out), p.recv(mod(r - 1, n))]);
    if (got.length !== into.length) {
      throw new TypeError(`reduction block has ${got.length} elements, expected ${into.length}`);
    }
    for (let i = 0; i < into.length; i++) into[i] += got[i];
  }
  if (op === "mean") {
    const mine = block(r);
    for (let i = 0; i < mine.length; i++) mine[i] /= n;
  }
}

/**
 * Ring all-gather: starting from block `rank` (read with `get`), every rank
 * ends with all blocks (each handed to `put`). Blocks may differ in length.
 */
export async function ringAllgather(
  p: Pipe,
  get: (i: number) => Elem,
  put: (i: number, data: Elem) => void,
): Promise<void> {
  const { rank: r, size: n } = p;
  for (let s = 0; s < n - 1; s++) {
    const out = get(mod(r - s, n)).slice();
    const [, got] = await Promise.all([p.send(mod(r + 1, n), out), p.recv(mod(r - 1, n))]);
    put(mod(r - s - 1, n), got);
  }
}

/** Elementwise reduction: ring reduce-scatter, then ring all-gather of the reduced blocks. */
export async function allreduce<T extends Elem>(p: Pipe, data: T, op: ReduceOp): Promise<T> {
  const acc = data.slice() as T;
  const off = blockOffsets(evenCounts(acc.length, p.size));
  await reduceScatterInPlace(p, acc, off, op);
  await ringAllgather(
    p,
    (i) => acc.subarray(off[i], off[i + 1]),
    (i, got) => acc.set(got, off[i]),
  );
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
  const acc = data.slice() as T;
  await reduceScatterInPlace(p, acc, off, op);
  return acc.slice(off[p.rank], off[p.rank + 1]) as T;
}

/** Result `[i]` is rank i's array (ring all-gather of whole arrays). */
export async function allgather<T extends Elem>(p: Pipe, data: T): Promise<T[]> {
  const out = new Array<T>(p.size);
  out[p.rank] = data;
  await ringAllgather(p, (i) => out[i], (i, got) => void (out[i] = got as T));
  return out;
}

/** Root's array on every rank, along a binomial tree rooted at `root`. */
export async function broadcast<T extends Elem>(p: Pipe, data: T | null, root: number): Promise<T> {
  const n = p.size;
  const v = mod(p.rank - root, n);
  if (v === 0 && !data) throw new TypeError("broadcast: the root must pass its array");
  let mask = 1;
  while (mask < n && !(v & mask)) mask <<= 1;
  if (v !== 0) data = await p.recv(mod(v - mask + root, n)) as T;
  const sends: Promise<void>[] = [];
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (v + mask < n) sends.push(p.send(mod(v + mask + root, n), data!.slice()));
  }
  await Promise.all(sends);
  return data!;
}
