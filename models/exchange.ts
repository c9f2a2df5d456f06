/**
 * Row exchanges between ranks for expert parallelism: tensors become typed
 * arrays at this boundary (collectives never see tensors). Rows of a tensor
 * [R, C] are cut into contiguous runs, one per destination rank, sent with
 * `alltoallv`, and the received runs concatenated in source-rank order.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { CollectiveOptions, Communicator } from "../collectives/types.ts";

/**
 * Sends rows `[sum(rows[0..j)), sum(rows[0..j]))` of `data` (row-major
 * [R, C]) to rank j and resolves with the rows received from every rank,
 * concatenated by source: [R', C]. The collective is issued before this
 * function returns (so it is in flight while the caller computes). `data`
 * is left untouched (each part is a copy, transferred to the communication
 * thread), unless `given` says the caller gives `data` up: then the parts
 * are views of it and its buffer moves to the communication thread whole
 * (detached here), which copies the parts it sends, not this thread.
 *
 * @example
 * ```ts
 * import { exchangeRows } from "./exchange.ts";
 * import { createMemoryGroup } from "../collectives/memory.ts";
 * const [c] = createMemoryGroup(1);
 * const y = await exchangeRows(c, new Float32Array(6).fill(1), 2, [3], { tag: "t" }); // [3, 2]
 * ```
 */
export function exchangeRows(
  comm: Communicator,
  data: Float32Array,
  cols: number,
  rows: number[],
  opts: CollectiveOptions,
  given = false,
): Promise<tf.Tensor> {
  let offset = 0;
  const parts = rows.map((n) => {
    const [from, to] = [cols * offset, cols * (offset += n)];
    // An empty part gets its own buffer: a view would share `data`'s, which the transport
    // moves away whole when another part is all of it (this rank sends every row away).
    return given && n > 0 ? data.subarray(from, to) : data.slice(from, to);
  });
  return comm.alltoallv(parts, opts).then((received) => {
    const out = new Float32Array(received.reduce((s, part) => s + part.length, 0));
    offset = 0;
    for (const part of received) {
      out.set(part, offset);
      offset += part.length;
    }
    return tf.tensor2d(out, [out.length / cols, cols]);
  });
}

/**
 * Tells each expert's owner how many rows of each of its experts it gets:
 * sends `perExpert[j*m .. (j+1)*m)` to rank j (m = E / size) and returns, per
 * source rank, the row counts of this rank's m experts.
 */
export function exchangeCounts(
  comm: Communicator,
  perExpert: Int32Array,
  tag: string,
): Promise<number[][]> {
  const m = perExpert.length / comm.size;
  const parts = Array.from({ length: comm.size }, (_, j) => perExpert.slice(j * m, (j + 1) * m));
  return comm.alltoallv(parts, { tag }).then((received) => received.map((c) => Array.from(c)));
}

/** Rows bound for each rank when rows are sorted by expert and rank j holds experts `[j*m, (j+1)*m)`. */
export function rowsPerRank(perExpert: Int32Array, size: number): number[] {
  const m = perExpert.length / size;
  return Array.from(
    { length: size },
    (_, j) => perExpert.slice(j * m, (j + 1) * m).reduce((a, b) => a + b, 0),
  );
}
