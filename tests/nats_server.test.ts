/**
 * The private nats-server: its Go thread count (GOMAXPROCS) is a quarter of
 * the host's cores by default, can be set, and a bad value is refused before
 * anything starts.
 */
import { equal, rejects } from "node:assert/strict";
import { defaultServerProcs, startNatsServer } from "../actors/nats_server.ts";

/** The GOMAXPROCS a running process was started with, from /proc. */
async function goMaxProcsOf(pid: number): Promise<string | undefined> {
  const environ = await Deno.readTextFile(`/proc/${pid}/environ`);
  return environ.split("\0").find((kv) => kv.startsWith("GOMAXPROCS="))?.slice(11);
}

Deno.test("defaultServerProcs: a quarter of the cores, at least one", () => {
  equal(defaultServerProcs(1), 1);
  equal(defaultServerProcs(2), 1);
  equal(defaultServerProcs(7), 1);
  equal(defaultServerProcs(8), 2);
  equal(defaultServerProcs(16), 4);
});

Deno.test("startNatsServer runs the server with the default or the given GOMAXPROCS", async () => {
  for (const [maxProcs, expected] of [[undefined, String(defaultServerProcs())], [3, "3"]]) {
    const server = await startNatsServer({ maxProcs: maxProcs as number | undefined });
    try {
      equal(await goMaxProcsOf(server.pid), expected);
    } finally {
      await server.stop();
    }
  }
});

Deno.test("startNatsServer refuses a bad maxProcs with a RangeError", async () => {
  for (const bad of [0, -1, 1.5, NaN]) {
    await rejects(startNatsServer({ maxProcs: bad }), {
      name: "RangeError",
      message: `maxProcs must be an integer >= 1, got ${bad}`,
    });
  }
});
