/**
 * `deno task agent --nats URL`: runs the per-host agent until interrupted.
 * Credentials come from the environment (`SCMOE_NATS_TOKEN`, `SCMOE_NATS_USER`
 * and `SCMOE_NATS_PASS`, `SCMOE_NATS_NKEY_SEED`, `SCMOE_NATS_CREDS_FILE`) or
 * from `--user` and `--creds FILE`; secrets are never taken from argv.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Agent } from "./agent.ts";
import { credentialsFromEnv } from "./bus_nats.ts";

const { values } = parseArgs({
  options: {
    nats: { type: "string" },
    user: { type: "string" },
    creds: { type: "string" },
  },
  strict: true,
});
if (!values.nats) {
  console.error("agent: --nats URL is required (e.g. --nats nats://10.0.0.1:4222)");
  Deno.exit(2);
}
const creds = credentialsFromEnv(values.nats.split(","));
if (values.user) creds.user = values.user;
if (values.creds) creds.credsFile = values.creds;
const agent = await Agent.start(creds);
console.log(`agent ${agent.info.agentId} on ${agent.info.hostname}: ${agent.info.cores} cores`);
Deno.addSignalListener("SIGINT", async () => {
  await agent.stop();
  Deno.exit(0);
});
