/**
 * `deno task agent --nats URL`: runs the per-host agent until interrupted.
 * Credentials come from the environment (`SCMOE_NATS_TOKEN`, `SCMOE_NATS_USER`
 * and `SCMOE_NATS_PASS`, `SCMOE_NATS_NKEY_SEED`, `SCMOE_NATS_CREDS_FILE`) or
 * from `--user` and `--creds FILE`; secrets are never taken from argv.
 * `--allow-module-root PATH_OR_URL` (repeatable) lets actors be built from the
 * modules of that folder besides the package's own (see `actors/module_roots.ts`);
 * actor processes run in the agent's working directory.
 *
 * @module
 */
import { Agent } from "../actors/agent.ts";
import { credentialsFromEnv } from "../actors/bus_nats.ts";
import { toModuleRoots } from "../actors/module_roots.ts";
import { type Command, parseCommand, usage, UsageError } from "./flags.ts";
import { runCli } from "./run.ts";

/** `deno task agent`'s command line. */
export const AGENT_COMMAND: Command = {
  name: "deno task agent",
  summary: "Runs this host's agent: it answers discovery and starts actor processes for drivers.",
  flags: {
    nats: { arg: "URL", help: "NATS server(s) to join, nats://host:port[,...] (required)" },
    user: { arg: "NAME", help: "NATS user (its password from SCMOE_NATS_PASS)" },
    creds: { arg: "FILE", help: "NATS credentials file (JWT and seed)" },
    "allow-module-root": {
      arg: "DIR",
      multiple: true,
      help: "a folder (path or file:/https: URL) whose modules actors may load; repeatable",
    },
  },
  epilog: "The token, password or nkey seed come from SCMOE_NATS_TOKEN, SCMOE_NATS_PASS, " +
    "SCMOE_NATS_NKEY_SEED.",
};

/** The CLI: starts the agent and serves until SIGINT; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const f = parseCommand(AGENT_COMMAND, args);
  if (f.help) {
    console.log(usage(AGENT_COMMAND));
    return 0;
  }
  const nats = f.required("nats");
  if (!nats.split(",").every((u) => /^(nats|tls):\/\/[^/\s]+\/?$/.test(u))) {
    throw new UsageError(`--nats must be nats://host:port[,...] (got ${JSON.stringify(nats)})`);
  }
  const creds = credentialsFromEnv(nats.split(","));
  const user = f.string("user");
  const credsFile = f.string("creds");
  if (user) creds.user = user;
  if (credsFile) creds.credsFile = credsFile;
  let moduleRoots: string[];
  try {
    moduleRoots = toModuleRoots(f.all("allow-module-root"));
  } catch (e) {
    throw new UsageError(`--allow-module-root: ${(e as Error).message}`);
  }
  const agent = await Agent.start(creds, { moduleRoots });
  console.log(
    `agent ${agent.info.agentId} on ${agent.info.hostname}: ${agent.info.cores} cores, ` +
      `module roots ${agent.moduleRoots.join(" ")}`,
  );
  await new Promise<void>((resolve) => {
    Deno.addSignalListener("SIGINT", () => agent.stop().then(resolve));
  });
  return 0;
}

if (import.meta.main) await runCli(main);
