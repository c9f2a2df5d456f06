/**
 * `deno task agent --nats URL [--token T | --user U --password P]`: runs the
 * per-host agent until interrupted.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Agent } from "./agent.ts";

const { values } = parseArgs({
  options: {
    nats: { type: "string" },
    token: { type: "string" },
    user: { type: "string" },
    password: { type: "string" },
  },
  strict: true,
});
if (!values.nats) {
  console.error("agent: --nats URL is required (e.g. --nats nats://10.0.0.1:4222)");
  Deno.exit(2);
}
const agent = await Agent.start({
  servers: values.nats.split(","),
  token: values.token ?? Deno.env.get("SCMOE_NATS_TOKEN"),
  user: values.user,
  pass: values.password ?? Deno.env.get("SCMOE_NATS_PASS"),
});
console.log(`agent ${agent.info.agentId} on ${agent.info.hostname}: ${agent.info.cores} cores`);
Deno.addSignalListener("SIGINT", async () => {
  await agent.stop();
  Deno.exit(0);
});
