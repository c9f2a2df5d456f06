/**
 * The driver of a multi-host training run, as a process of its own (run
 * inside a network namespace by {@link ./multihost.ts}):
 *
 * ```sh
 * SCMOE_NATS_TOKEN=... deno run -A bench/multihost_driver.ts \
 *   --cluster nats://10.213.80.1:4222 --hosts AGENT0,AGENT1 --out DIR -- TRAIN FLAGS
 * ```
 *
 * Waits until every agent named in `--hosts` answers discovery, trains with
 * rank i placed on the i-th of them (heartbeat timeout `--heartbeat-ms`,
 * default 3000), prints `step N` as each step completes and at the end one
 * JSON line: the steps completed, the loss of each step, where each rank ran
 * and, with `--monitor URL,...`, the client connections those nats-servers'
 * monitoring endpoints list during the first step. A run stopped on faults
 * prints `error: ...` and exits with code 3, as `deno task train` does.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decode } from "../actors/codec.ts";
import { type AgentInfo, DISCOVER_SUBJECT } from "../actors/agent.ts";
import { connectNats, credentialsFromEnv } from "../actors/bus_nats.ts";
import { placementOf } from "../actors/mod.ts";
import { trainWithArgs } from "../cli/train.ts";
import { EXIT_STOPPED } from "../cli/run.ts";
import { type Recovery, TrainingStopped } from "../mod.ts";

/** What the driver prints. */
export interface DriverReport {
  /** Steps the run completed. */
  steps: number;
  /** Training loss of each line of `metrics.jsonl`, in order. */
  losses: number[];
  /** The step of each line of `metrics.jsonl`, in order. */
  loggedSteps: number[];
  /** `placementOf` of each rank after the first step. */
  placements: string[];
  /** `placementOf` of each rank after the last step completed. */
  lastPlacements: string[];
  /** Seconds the run took at the driver. */
  wallS: number;
  /** Actor id of each rank. */
  actorIds: string[];
  /** The ranks' collective group during the first step. */
  groupId: string;
  /** Client connections of every `--monitor` server during the first step. */
  connections: Connection[];
  /** The recoveries of the run. */
  recoveries: Recovery[];
}

/** One client connection a server's `/connz` listed. */
export interface Connection {
  /** The server's monitoring URL. */
  server: string;
  /** Address the client connected from. */
  ip: string;
  /** The name the client gave. */
  name: string;
}

/** The client connections each of `monitors` (`http://host:port`) lists now. */
async function connections(monitors: string[]): Promise<Connection[]> {
  const all: Connection[] = [];
  for (const server of monitors) {
    const res = await fetch(`${server}/connz?limit=1024`);
    const body = await res.json() as { connections?: { ip: string; name?: string }[] };
    for (const c of body.connections ?? []) all.push({ server, ip: c.ip, name: c.name ?? "" });
  }
  return all;
}

/** Resolves once every agent of `ids` answers discovery on `cluster` (or throws after `waitMs`). */
async function awaitAgents(cluster: string, ids: string[], waitMs: number): Promise<void> {
  const nc = await connectNats(credentialsFromEnv(cluster.split(",")), "multihost-probe");
  try {
    const giveUp = Date.now() + waitMs;
    let seen = new Set<string>();
    while (Date.now() < giveUp) {
      seen = new Set();
      for await (
        const m of await nc.requestMany(DISCOVER_SUBJECT, new Uint8Array(), {
          maxWait: 300,
        })
      ) {
        seen.add((decode(m.data) as AgentInfo).agentId);
      }
      if (ids.every((id) => seen.has(id))) return;
    }
    throw new Error(`agents ${ids.join(", ")} not all seen on ${cluster}: saw ${[...seen]}`);
  } finally {
    await nc.close();
  }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    options: {
      cluster: { type: "string" },
      hosts: { type: "string" },
      out: { type: "string" },
      monitor: { type: "string", default: "" },
      "heartbeat-ms": { type: "string", default: "3000" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (!values.cluster || !values.hosts || !values.out) {
    console.error("multihost_driver: --cluster, --hosts and --out are required");
    Deno.exit(2);
  }
  const hosts = values.hosts.split(",");
  await awaitAgents(values.cluster, hosts, 10_000);
  const placements: string[] = [];
  let lastPlacements: string[] = [];
  const actorIds: string[] = [];
  let groupId = "";
  let conns: Connection[] = [];
  const run = trainWithArgs([...positionals, "--cluster", values.cluster, "--out", values.out], {
    verbose: true,
    init: {
      token: Deno.env.get("SCMOE_NATS_TOKEN"),
      heartbeatTimeoutMs: Number(values["heartbeat-ms"]),
    },
    rankHosts: hosts,
    onStep: async (step, group) => {
      console.log(`step ${step}`);
      lastPlacements = group.handles.map((h) => placementOf(h));
      if (step !== 1 || placements.length) return;
      placements.push(...group.handles.map((h) => placementOf(h)));
      actorIds.push(...group.handles.map((h) => h.actorId));
      groupId = group.groupId;
      conns = await connections(values.monitor!.split(",").filter(Boolean));
    },
  });
  const summary = await run.catch((e) => {
    if (!(e instanceof TrainingStopped)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(EXIT_STOPPED);
  });
  const text = await Deno.readTextFile(`${values.out}/metrics.jsonl`);
  const lines = text.trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
  const report: DriverReport = {
    steps: summary.steps,
    losses: lines.map((l) => l.loss),
    loggedSteps: lines.map((l) => l.step),
    placements,
    lastPlacements,
    wallS: summary.wallS,
    actorIds,
    groupId,
    connections: conns,
    recoveries: summary.recoveries,
  };
  console.log(JSON.stringify(report));
}
