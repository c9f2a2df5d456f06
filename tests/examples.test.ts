/**
 * Every example in `examples/` runs as a user would run it, from the
 * repository: the actor example on both clusters, the training script on
 * local ranks and on host agents over a `nats://` URL, the user's own model
 * with the MoE layer on 2 local ranks.
 */
import {
  assertActorsOutput,
  assertMixerOutput,
  assertTrainTextOutput,
} from "./helpers/examples.ts";
import { denoRun, smallCorpus } from "./helpers/deno_run.ts";
import { startAgent, stopAgent } from "./helpers/agents.ts";
import { startNatsServer } from "../mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

for (const cluster of ["local", "nats"]) {
  Deno.test(`examples/actors.ts on a ${cluster} cluster`, async () => {
    assertActorsOutput(await denoRun("examples/actors.ts", ["--cluster", cluster], { cwd: ROOT }));
  });
}

Deno.test("examples/moe_mixer.ts: an MLP-mixer with ScMoE layers trains on 2 local ranks", async () => {
  const run = await denoRun("examples/moe_mixer.ts", ["--steps", "30", "--explain"], { cwd: ROOT });
  const r = assertMixerOutput(run);
  console.log(
    `moe_mixer: loss ${r.firstLoss.toFixed(3)} -> ${r.loss.toFixed(3)}, hidden ${
      r.hiddenFraction.toFixed(2)
    }`,
  );
});

Deno.test("examples/train_text.ts across two host agents on a nats:// URL", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "example_agents_" });
  const server = await startNatsServer();
  const agents = await Promise.all([0, 1].map(() => startAgent(server.url, server.token!)));
  try {
    await Deno.writeTextFile(`${tmp}/corpus.txt`, smallCorpus());
    const run = await denoRun(
      "examples/train_text.ts",
      [`${tmp}/corpus.txt`, "--cluster", server.url, "--out", `${tmp}/run`, "--steps", "8"],
      // The driver takes the token from the environment, as the agents do.
      { cwd: ROOT, env: { SCMOE_NATS_TOKEN: server.token! } },
    );
    assertTrainTextOutput(run, 8);
  } finally {
    for (const agent of agents) await stopAgent(agent);
    await server.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});
