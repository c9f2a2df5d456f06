/**
 * Row exchanges between ranks for expert parallelism: tensors become typed
 * arrays at this boundary (collectives never see tensors). Rows of a tensor
 * [R, C] are cut into contiguous runs, one per destination rank, sent with
 * `alltoallv`, and the received runs concatenated in source-rank order.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Communicator } from "../collectives/types.ts";

/**
 * Sends rows `[sum(rows[0..j)), sum(rows[0..j]))` of `x` [R, C] to rank j and
 * returns the rows received from every rank, concatenated by source: [R', C].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { exchangeRows } from "./exchange.ts";
 * import { createMemoryGroup } from "../collectives/memory.ts";
 * const [c] = createMemoryGroup(1);
 * const y = await exchangeRows(c, tf.ones([3, 2]), [3], "t"); // [3, 2]
 * ```
 */
export async function exchangeRows(
  comm: Communicator,
  x: tf.Tensor,
  rows: number[],
  tag: string,
): Promise<tf.Tensor> {
  const C = x.shape[1] as number;
  const data = (await x.data()) as Float32Array;
  let offset = 0;
  const parts = rows.map((n) => data.slice(C * offset, C * (offset += n)));
  const received = await comm.alltoallv(parts, { tag });
  const out = new Float32Array(received.reduce((s, part) => s + part.length, 0));
  offset = 0;
  for (const part of received) {
    out.set(part, offset);
    offset += part.length;
  }
  return tf.tensor2d(out, [out.length / C, C]);
}

/**
 * Tells each expert's owner how many rows of each of its experts it gets:
 * sends `perExpert[j*m .. (j+1)*m)` to rank j (m = E / size) and returns, per
 * source rank, the row counts of this rank's m experts.
 */
export async function exchangeCounts(
  comm: Communicator,
  perExpert: Int32Array,
  tag: string,
): Promise<number[][]> {
  const m = perExpert.length / comm.size;
  const parts = Array.from({ length: comm.size }, (_, j) => perExpert.slice(j * m, (j + 1) * m));
  const received = await comm.alltoallv(parts, { tag });
  return received.map((c) => Array.from(c));
}

/** Rows bound for each rank when rows are sorted by expert and rank j holds experts `[j*m, (j+1)*m)`. */
export function rowsPerRank(perExpert: Int32Array, size: number): number[] {
  const m = perExpert.length / size;
  return Array.from(
    { length: size },
    (_, j) => perExpert.slice(j * m, (j + 1) * m).reduce((a, b) => a + b, 0),
  );
}
