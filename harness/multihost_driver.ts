/**
 * The driver of a multi-host training run, as a process of its own (run
 * inside a network namespace by {@link ./multihost.ts}):
 *
 * ```sh
 * SCMOE_NATS_TOKEN=... deno run -A harness/multihost_driver.ts \
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
import { decode } from "../actors/codec.ts";
import { type AgentInfo, DISCOVER_SUBJECT } from "../actors/agent.ts";
import { connectNats, credentialsFromEnv } from "../actors/bus_nats.ts";
import { placementOf } from "../actors/mod.ts";
import { parseTrainArgs, trainWithArgs } from "../cli/train.ts";
import { type Command, parseCommand, usage, UsageError } from "../cli/flags.ts";
import { runCli } from "../cli/run.ts";
import type { Recovery } from "../mod.ts";

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

/** The driver's command line; the training flags follow `--`. */
export const DRIVER_COMMAND: Command = {
  name: "deno run -A harness/multihost_driver.ts",
  summary: "Drives a multi-host training run over agents on NATS and prints its report " +
    "as one JSON line; training flags follow --.",
  flags: {
    cluster: {
      arg: "URL",
      help: "nats://host:port of the agents' servers, comma-separated (required)",
    },
    hosts: { arg: "IDS", help: "agent ids, comma-separated; rank i runs on the i-th (required)" },
    out: { arg: "DIR", help: "the run's output directory (required)" },
    monitor: {
      arg: "URLS",
      help: "http://host:port monitoring endpoints to list connections of, comma-separated",
    },
    "heartbeat-ms": {
      arg: "MS",
      help: "heartbeat timeout of the runtime in ms, a positive integer (default 3000)",
    },
  },
  epilog: "After --: the flags of deno task train, e.g. -- --steps 8 --ranks 2.\n" +
    "Add --debug to show the stack trace of an expected failure.",
};

/** The driver's command line: its own flags, and the training flags after `--`. */
export interface DriverArgs {
  /** `--help`: print the usage and nothing else. */
  help: boolean;
  /** `--cluster`. */
  cluster: string;
  /** `--hosts`, split. */
  hosts: string[];
  /** `--out`. */
  out: string;
  /** `--monitor`, split. */
  monitors: string[];
  /** `--heartbeat-ms`. */
  heartbeatMs: number;
  /** The training flags after `--`. */
  trainFlags: string[];
}

/**
 * Reads the driver's command line.
 *
 * @throws {UsageError} one line naming the flag and what it accepts.
 */
export function parseDriverArgs(args: readonly string[]): DriverArgs {
  const end = args.indexOf("--");
  const own = end < 0 ? args : args.slice(0, end);
  const trainFlags = end < 0 ? [] : args.slice(end + 1);
  const f = parseCommand(DRIVER_COMMAND, own);
  // The training flags are checked here too, before waiting for any agent.
  if (!f.help) parseTrainArgs(trainFlags);
  const list = (flag: string) => (f.string(flag) ?? "").split(",").filter(Boolean);
  if (f.help) {
    return {
      help: true,
      cluster: "",
      hosts: [],
      out: "",
      monitors: [],
      heartbeatMs: 0,
      trainFlags,
    };
  }
  const hosts = list("hosts");
  if (hosts.length === 0) {
    throw new UsageError(`--hosts is required: ${DRIVER_COMMAND.flags.hosts.help}`);
  }
  return {
    help: false,
    cluster: f.required("cluster"),
    hosts,
    out: f.required("out"),
    monitors: list("monitor"),
    heartbeatMs: f.integer("heartbeat-ms", 3000, 1),
    trainFlags,
  };
}

/** The driver: returns the exit code; expected failures are thrown for {@linkcode runCli}. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseDriverArgs(args);
  if (parsed.help) {
    console.log(usage(DRIVER_COMMAND));
    return 0;
  }
  const { cluster, hosts, out } = parsed;
  await awaitAgents(cluster, hosts, 10_000);
  const placements: string[] = [];
  let lastPlacements: string[] = [];
  const actorIds: string[] = [];
  let groupId = "";
  let conns: Connection[] = [];
  // A run stopped on faults is thrown to runCli: `error: ...` and exit code 3.
  const summary = await trainWithArgs([...parsed.trainFlags, "--cluster", cluster, "--out", out], {
    verbose: true,
    init: {
      token: Deno.env.get("SCMOE_NATS_TOKEN"),
      heartbeatTimeoutMs: parsed.heartbeatMs,
    },
    rankHosts: hosts,
    onStep: async (step, group) => {
      console.log(`step ${step}`);
      lastPlacements = group.handles.map((h) => placementOf(h));
      if (step !== 1 || placements.length) return;
      placements.push(...group.handles.map((h) => placementOf(h)));
      actorIds.push(...group.handles.map((h) => h.actorId));
      groupId = group.groupId;
      conns = await connections(parsed.monitors);
    },
  });
  const text = await Deno.readTextFile(`${out}/metrics.jsonl`);
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
  return 0;
}

if (import.meta.main) await runCli(main);
