/**
 * Row exchanges between 2 ranks on communication workers, with the rows
 * given up (their buffer moves to the communication thread whole) or
 * copied, including a rank that sends every row away or keeps them all.
 */
import { deepEqual } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createCommunicator } from "../collectives/comm.ts";
import { meshPorts } from "../collectives/local.ts";
import { exchangeRows } from "../models/exchange.ts";

Deno.test("exchangeRows: rows given up or copied arrive alike, every split", async () => {
  const comms = await Promise.all(
    meshPorts(2).map((ports, rank) =>
      createCommunicator({ kind: "local", groupId: "rows", rank, size: 2, ports })
    ),
  );
  try {
    const cols = 2;
    // Rows per destination of rank 0 and rank 1: everything away, everything kept, a split.
    const splits: [number[], number[]][] = [[[0, 3], [2, 0]], [[3, 0], [0, 2]], [[1, 2], [1, 1]]];
    for (const given of [false, true]) {
      for (const [i, split] of splits.entries()) {
        const data = split.map((rows, r) =>
          Float32Array.from({ length: cols * (rows[0] + rows[1]) }, (_, k) => 100 * r + k)
        );
        const want = [0, 1].map((dst) =>
          [0, 1].flatMap((src) => {
            const from = cols * (dst === 0 ? 0 : split[src][0]);
            return [...data[src].slice(from, from + cols * split[src][dst])];
          })
        );
        const got = await Promise.all(
          comms.map((c, r) =>
            exchangeRows(c, data[r], cols, split[r], { tag: `t${i}${given}` }, given)
          ),
        );
        deepEqual(await Promise.all(got.map(async (t) => [...await t.data()])), want);
        tf.dispose(got);
      }
    }
  } finally {
    await Promise.all(comms.map((c) => c.close()));
  }
});
