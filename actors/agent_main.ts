/**
 * `deno task agent --nats URL`: runs the per-host agent until interrupted.
 * Credentials come from the environment (`SCMOE_NATS_TOKEN`, `SCMOE_NATS_USER`
 * and `SCMOE_NATS_PASS`, `SCMOE_NATS_NKEY_SEED`, `SCMOE_NATS_CREDS_FILE`) or
 * from `--user` and `--creds FILE`; secrets are never taken from argv.
 * `--allow-module-root PATH_OR_URL` (repeatable) lets actors be built from the
 * modules of that folder besides the package's own (see `module_roots.ts`);
 * actor processes run in the agent's working directory.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Agent } from "./agent.ts";
import { credentialsFromEnv } from "./bus_nats.ts";
import { toModuleRoots } from "./module_roots.ts";

const { values } = parseArgs({
  options: {
    nats: { type: "string" },
    user: { type: "string" },
    creds: { type: "string" },
    "allow-module-root": { type: "string", multiple: true, default: [] },
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
let moduleRoots: string[] = [];
try {
  moduleRoots = toModuleRoots(values["allow-module-root"]);
} catch (e) {
  console.error(`agent: --allow-module-root: ${(e as Error).message}`);
  Deno.exit(2);
}
const agent = await Agent.start(creds, { moduleRoots });
console.log(
  `agent ${agent.info.agentId} on ${agent.info.hostname}: ${agent.info.cores} cores, ` +
    `module roots ${agent.moduleRoots.join(" ")}`,
);
Deno.addSignalListener("SIGINT", async () => {
  await agent.stop();
  Deno.exit(0);
});
