/**
 * Entry point of an actor process of a `nats` cluster, spawned by a host
 * agent. Connects to the job's bus, starts its heartbeat Worker, then
 * announces itself to the driver with a first heartbeat. Its stdin is a pipe
 * from the agent that nobody writes: at end-of-file the agent is gone (even
 * SIGKILLed) and the process exits rather than live on as an orphan.
 * `--module=URL` and `--module-root=URL` (repeated), from the agent, name
 * the one module this process may build its actor from and the roots it must
 * lie under; a "create" naming anything else is refused (`module_roots.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { credentialsFromEnv, NatsBus } from "./bus_nats.ts";
import { ActorHost } from "./host.ts";
import { LINK_SECRET_ENV } from "./agent.ts";
import type { HeartbeatConfig } from "./heartbeat_worker.ts";

const { values } = parseArgs({
  options: {
    job: { type: "string" },
    actor: { type: "string" },
    incarnation: { type: "string" },
    servers: { type: "string" },
    heartbeat: { type: "string", default: "500" },
    module: { type: "string" },
    "module-root": { type: "string", multiple: true, default: [] },
  },
  strict: true,
});
if (
  !values.job || !values.actor || !values.servers || values.incarnation === undefined ||
  !values.module
) {
  console.error(
    "process_main: --job, --actor, --incarnation, --servers and --module are required",
  );
  Deno.exit(2);
}
(async () => {
  for await (const _ of Deno.stdin.readable) { /* the agent never writes */ }
  console.error(`actor ${values.actor}: its host agent is gone; exiting`);
  Deno.exit(1);
})();
const creds = credentialsFromEnv(values.servers.split(","));
const linkSecret = Deno.env.get(LINK_SECRET_ENV);
const bus = await NatsBus.open(
  creds,
  values.job,
  values.actor,
  linkSecret ? { secret: linkSecret } : undefined,
);
bus.nc.closed().then(() => Deno.exit(0));
new ActorHost(bus, values.actor, () => Deno.exit(0), {
  moduleUrl: values.module,
  moduleRoots: values["module-root"],
}, creds.servers);
const hb = new Worker(new URL("./heartbeat_worker.ts", import.meta.url), { type: "module" });
hb.postMessage(
  {
    creds,
    jobId: values.job,
    actorId: values.actor,
    incarnation: Number(values.incarnation),
    intervalMs: Number(values.heartbeat),
  } satisfies HeartbeatConfig,
);
