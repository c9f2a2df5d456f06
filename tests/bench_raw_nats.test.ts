/**
 * The raw nats.js reference of `bench collectives` (`bench/raw_nats.ts`):
 * each exchange resolves only once every rank has every byte of it, also
 * for parts cut into several chunks and calls back to back of changing
 * sizes.
 */
import { deepEqual, ok } from "node:assert/strict";
import { startNatsServer } from "../actors/nats_server.ts";
import { startRawNatsGroup } from "../bench/raw_nats.ts";
import { MAX_CHUNK_BYTES } from "../collectives/nats.ts";

Deno.test("raw nats reference: every exchange waits for all its bytes on every rank", async () => {
  const server = await startNatsServer({ maxPayload: 8 << 20, token: null });
  try {
    const ranks = 3;
    const group = await startRawNatsGroup(server.url, ranks);
    try {
      let expected = 0;
      for (const perPeer of [1024, 2.5 * MAX_CHUNK_BYTES, 8, 3 * MAX_CHUNK_BYTES, 4096]) {
        const { ms, receivedBytes } = await group.alltoall(perPeer);
        expected += (ranks - 1) * perPeer;
        ok(ms > 0);
        deepEqual(receivedBytes, Array(ranks).fill(expected), `after ${perPeer} B per peer`);
      }
    } finally {
      await group.close();
    }
  } finally {
    await server.stop();
  }
});
