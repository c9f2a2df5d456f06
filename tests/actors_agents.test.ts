/**
 * A driver joins an existing NATS server where host agents run
 * (`deno task agent`), places actors on them, and leaves nothing behind.
 */
import assert from "node:assert/strict";
import { processAlive } from "./helpers/process.ts";
import { startAgent, stopAgent } from "./helpers/agents.ts";
import {
  ActorDiedError,
  get,
  init,
  placementOf,
  remote,
  shutdown,
  startNatsServer,
} from "../actors/mod.ts";
import type { Probe } from "./fixtures/actors.ts";

const ProbeActor = remote<typeof Probe>(new URL("./fixtures/actors.ts", import.meta.url), "Probe");

Deno.test("a driver places actors on the host agents of an existing NATS", async () => {
  const server = await startNatsServer();
  const agents = await Promise.all([
    startAgent(server.url, server.token!),
    startAgent(server.url, server.token!),
  ]);
  const pids: number[] = [];
  try {
    await assert.rejects(init({ cluster: server.url, agentWaitMs: 500 }), /[Aa]uthorization/);
    await init({ cluster: server.url, token: server.token, agentWaitMs: 5000 });
    try {
      const device = { backend: "cpu" as const, index: 1 };
      const actors = await Promise.all([
        ProbeActor.options({ host: agents[0].id, device }).remote(),
        ProbeActor.options({ host: agents[1].id }).remote(),
        ProbeActor.remote(),
        ProbeActor.remote(),
      ]);
      const where = actors.map((a) => placementOf(a));
      assert.match(where[0], new RegExp(`agent ${agents[0].id}`));
      assert.match(where[1], new RegExp(`agent ${agents[1].id}`));
      const used = new Set(where.map((w) => /agent (\w+)/.exec(w)![1]));
      assert.equal(used.size, 2, "round-robin placement uses both agents");
      const who = await get(actors.map((a) => a.whoami()));
      pids.push(...who.map((w) => w.pid));
      assert.equal(new Set(pids).size, 4, "each actor is its own process");
      assert.deepEqual(who[0].device, device);
      await assert.rejects(ProbeActor.options({ host: "no-such-host" }).remote(), /no host agent/);
    } finally {
      await shutdown();
    }
    for (const pid of pids) {
      assert.ok(!processAlive(pid), `actor process ${pid} was stopped by its agent`);
    }
  } finally {
    for (const a of agents) await stopAgent(a);
    await server.stop();
  }
});

Deno.test("an agent SIGKILLed leaves no actor process behind; the driver learns the actor died", async () => {
  const server = await startNatsServer();
  const agent = await startAgent(server.url, server.token!);
  try {
    await init({ cluster: server.url, token: server.token, agentWaitMs: 5000 });
    try {
      const actor = await ProbeActor.options({ host: agent.id }).remote();
      const { pid } = await get(actor.whoami());
      agent.child.kill("SIGKILL");
      await agent.child.status;
      const giveUp = Date.now() + 5000;
      while (processAlive(pid) && Date.now() < giveUp) await new Promise((r) => setTimeout(r, 50));
      assert.ok(!processAlive(pid), `actor process ${pid} exited after its agent died`);
      await assert.rejects(get(actor.whoami(), { timeoutMs: 10_000 }), ActorDiedError);
    } finally {
      await shutdown();
    }
  } finally {
    await agent.child.stdout.cancel().catch(() => {});
    await server.stop();
  }
});
