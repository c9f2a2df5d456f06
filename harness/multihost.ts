/**
 * A training run across emulated hosts: network namespaces on one bridge
 * (`collectives/netns.ts`; root only), token-protected nats-servers, a host
 * agent (`cli/agent.ts`) in each of two host namespaces and the
 * driver ({@link ./multihost_driver.ts}) in a namespace of its own. Every
 * process started here, and every process left in the namespaces, is killed
 * and the namespaces are deleted whatever happens.
 *
 * @module
 */
import { createShapedHosts, setLink, type ShapedHosts } from "../collectives/netns.ts";
import type { DriverReport } from "./multihost_driver.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const AGENT_MAIN = `${ROOT}cli/agent.ts`;
const DRIVER_MAIN = `${ROOT}harness/multihost_driver.ts`;
const CLIENT_PORT = 4222;
const ROUTE_PORT = 6222;
const MONITOR_PORT = 8222;

/** Options of {@linkcode multihostTrain}. */
export interface MultihostOptions {
  /**
   * `"single"`: one nats-server in namespace 0, agents in 1 and 2, the driver
   * in 3. `"routed"`: a cluster of two routed nats-servers, one in each of the
   * host namespaces 1 and 2, each host's agent (and so its ranks) on its own
   * server, the driver in namespace 0 on host 1's server.
   */
  topology: "single" | "routed";
  /**
   * Host namespaces with an agent (and, routed, a nats-server) each, 1..N
   * (default 2): rank i runs on host i + 1. Routed servers form a full mesh.
   */
  hosts?: number;
  /** Egress rate of every namespace's link in megabits per second (default 1000). */
  rateMbit?: number;
  /**
   * Kill (SIGKILL) the nats-server of host `host` (routed only) once the
   * driver reports step `afterStep`.
   */
  killServer?: { afterStep: number; host: number };
  /** Flags of the training run (not `--cluster`, `--out`). */
  flags: string[];
  /** Third octet of the hosts' 10.213.x.0/24 network. */
  net: number;
  /** Everything is killed after this long (default 45 s). */
  deadlineMs?: number;
  /** Heartbeat timeout of the driver's runtime in milliseconds (default 3000). */
  heartbeatMs?: number;
  /**
   * Cut host `host` (default 2, where rank 1 runs) off, its link set down,
   * once the driver reports step `afterStep`; set it up again `forMs` later
   * (`null`: never).
   */
  cut?: { afterStep: number; forMs: number | null; host?: number };
}

/** What {@linkcode multihostTrain} saw. */
export interface MultihostResult {
  /** The driver's report, when the run completed. */
  report?: DriverReport;
  /** The driver's exit code (0, or 3 for a run stopped on faults). */
  driverExit: number;
  /** The driver's last line on stderr (its one-line error when it stopped). */
  driverError: string;
  /** Everything the driver printed on stderr (progress, warnings). */
  driverLog: string;
  /** When the cut host's link was set down, and up again (`Date.now()`; with `cut`). */
  cut?: { downAt: number; upAt?: number };
  /** When the server of `killServer` was killed (`Date.now()`). */
  killedAt?: number;
  /** Agent id of the agent in host namespace 1, then of that in 2, ... */
  agents: string[];
  /** Routes each server reported up (routed topology), by server. */
  routes: number[];
  /** Exit code of each agent after SIGINT once the run was over. */
  agentExits: number[];
  /** Processes left in the namespaces after that orderly stop (then killed). */
  leftover: number;
  /** Address of host namespace 1, then of 2, ... (where rank 0, then rank 1, ... should run). */
  hostAddresses: string[];
  /** Monitoring URL of the server host 1's agent uses, then of host 2's. */
  hostServers: string[];
}

/** A child process with its output collected as it comes. */
export class Child {
  stdout = "";
  stderr = "";
  readonly process: Deno.ChildProcess;
  /** Its exit. */
  readonly exited: Promise<Deno.CommandStatus>;
  /**
   * Its exit and the end of its output (which processes it started may hold
   * open after it exited: an agent's actor processes share its stdout).
   */
  readonly done: Promise<Deno.CommandStatus>;

  constructor(command: Deno.Command) {
    this.process = command.spawn();
    const collect = (s: ReadableStream<Uint8Array>, to: "stdout" | "stderr") =>
      s.pipeThrough(new TextDecoderStream()).pipeTo(
        new WritableStream({ write: (c) => void (this[to] += c) }),
      ).catch(() => {});
    const reading = Promise.all([
      collect(this.process.stdout, "stdout"),
      collect(this.process.stderr, "stderr"),
    ]);
    this.exited = this.process.status;
    this.done = Promise.all([this.exited, reading]).then(([s]) => s);
  }

  /** Waits until `re` matches the output (or fails when the process ends or after `ms`). */
  async waitFor(re: RegExp, ms: number, what: string): Promise<RegExpMatchArray> {
    const giveUp = Date.now() + ms;
    let ended = false;
    this.exited.then(() => ended = true);
    while (true) {
      const m = (this.stdout + this.stderr).match(re);
      if (m) return m;
      if (ended || Date.now() > giveUp) {
        throw new Error(
          `${what}: ${ended ? "exited" : `nothing after ${ms} ms`}; output: ` +
            (this.stdout + this.stderr).trim().split("\n").slice(-5).join(" | "),
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `signal` (no-op when gone). */
  kill(signal: Deno.Signal): void {
    try {
      this.process.kill(signal);
    } catch { /* already gone */ }
  }
}

/** The nats-server configuration of one server (routed to `peers` when given). */
export function serverConfig(
  address: string,
  token: string,
  route?: { peers: string[]; user: string; password: string },
): string {
  const lines = [
    `listen: "${address}:${CLIENT_PORT}"`,
    `max_payload: ${8 * 1024 * 1024}`,
    `max_pending: ${256 * 1024 * 1024}`,
    `write_deadline: "10s"`,
    `authorization { token: "${token}" }`,
    `http: "${address}:${MONITOR_PORT}"`,
  ];
  if (route) {
    const urls = route.peers.map((p) =>
      `"nats-route://${route.user}:${route.password}@${p}:${ROUTE_PORT}"`
    );
    lines.push(
      `cluster {`,
      `  name: "scmoe"`,
      `  listen: "${address}:${ROUTE_PORT}"`,
      `  authorization { user: "${route.user}", password: "${route.password}" }`,
      `  routes: [ ${urls.join(", ")} ]`,
      `}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Process ids still inside the namespaces (all started by this run). */
async function pidsInside(net: ShapedHosts): Promise<number[]> {
  const pids: number[] = [];
  for (const ns of net.namespaces) {
    const out = await new Deno.Command("ip", { args: ["netns", "pids", ns], stderr: "null" })
      .output();
    pids.push(...new TextDecoder().decode(out.stdout).split(/\s+/).filter(Boolean).map(Number));
  }
  return pids;
}

/** SIGKILLs every process left inside the namespaces and waits (up to 5 s) until they are gone. */
export async function killLeftovers(net: ShapedHosts): Promise<number[]> {
  const left = await pidsInside(net);
  const giveUp = Date.now() + 5000;
  for (let pids = left; pids.length > 0 && Date.now() < giveUp; pids = await pidsInside(net)) {
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* already gone */ }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return left;
}

/**
 * Processes in a set of shaped host namespaces: a temporary folder, a NATS
 * token, the children started (each in its namespace), nats-servers (one,
 * or one a host routed to every other), and a teardown that leaves nothing.
 */
export class HostJob {
  /** The folder for server configurations and run outputs. */
  readonly dir: string;
  /** The token of every nats-server of the job. */
  readonly token = crypto.randomUUID().replaceAll("-", "");
  /** Every child started, in order. */
  readonly children: Child[] = [];

  private constructor(readonly net: ShapedHosts, dir: string) {
    this.dir = dir;
  }

  /** Makes `hosts` shaped namespaces at `rateMbit` on subnet `net`. */
  static async create(
    opts: { hosts: number; rateMbit: number; net: number; prefix: string },
  ): Promise<HostJob> {
    const net = await createShapedHosts({
      hosts: opts.hosts,
      rateMbit: opts.rateMbit,
      net: opts.net,
    });
    return new HostJob(net, await Deno.makeTempDir({ prefix: opts.prefix }));
  }

  /** Starts `cmd` in namespace `host` (cwd: the project). */
  start(host: number, cmd: string[], env: Record<string, string> = {}): Child {
    const child = new Child(
      this.net.command(host, cmd, {
        cwd: ROOT,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }),
    );
    this.children.push(child);
    return child;
  }

  /**
   * Starts a nats-server in each of `hosts` (routed to every other when
   * `routed`) and waits until each is ready and, routed, has its routes.
   */
  async startServers(hosts: number[], routed: boolean): Promise<Child[]> {
    const route = { user: "route", password: crypto.randomUUID().replaceAll("-", "") };
    const servers = hosts.map((h) => {
      const peers = hosts.filter((p) => p !== h).map((p) => this.net.addresses[p]);
      const conf = `${this.dir}/nats-${h}.conf`;
      Deno.writeTextFileSync(
        conf,
        serverConfig(this.net.addresses[h], this.token, routed ? { ...route, peers } : undefined),
        { mode: 0o600 },
      );
      return this.start(h, ["nats-server", "-c", conf]);
    });
    await Promise.all(servers.map((s) => s.waitFor(/Server is ready/, 10_000, "nats-server")));
    if (routed) {
      // Each server has its routes to every other before anyone connects.
      const all = new RegExp(`(Route connection created[^]*){${hosts.length - 1}}`);
      await Promise.all(servers.map((s) => s.waitFor(all, 15_000, "nats routes")));
    }
    return servers;
  }

  /**
   * Stops every child (`SIGINT` first when `graceful`: agents then stop
   * their actor processes; `SIGKILL` after 3 s), kills what is left in the
   * namespaces, removes them and the folder.
   */
  async close(graceful: boolean): Promise<void> {
    for (const c of this.children) c.kill(graceful ? "SIGINT" : "SIGKILL");
    const timer = setTimeout(() => this.children.forEach((c) => c.kill("SIGKILL")), 3000);
    await Promise.all(this.children.map((c) => c.exited));
    clearTimeout(timer);
    // Actor processes of an agent that was killed, and so never stopped them.
    await killLeftovers(this.net);
    await Promise.all(this.children.map((c) => c.done));
    await this.net.destroy();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** Runs the training across namespaces as `opts.topology` says (root only). */
export async function multihostTrain(opts: MultihostOptions): Promise<MultihostResult> {
  const routed = opts.topology === "routed";
  const nHosts = opts.hosts ?? 2;
  const hostIds = Array.from({ length: nHosts }, (_, i) => i + 1);
  const job = await HostJob.create({
    hosts: routed ? nHosts + 1 : nHosts + 2,
    rateMbit: opts.rateMbit ?? 1000,
    net: opts.net,
    prefix: "scmoe-multihost-",
  });
  const { net, dir, token, children } = job;
  const start = (host: number, cmd: string[], env: Record<string, string> = {}) =>
    job.start(host, cmd, env);
  const watchdog = setTimeout(() => {
    for (const c of children) c.kill("SIGKILL");
  }, opts.deadlineMs ?? 45_000);
  try {
    // Servers: namespace 0 alone, or one in each host namespace, routed to every other.
    const serverHosts = routed ? hostIds : [0];
    const servers = await job.startServers(serverHosts, routed);
    const urlOf = (h: number) => `nats://${net.addresses[h]}:${CLIENT_PORT}`;
    const monitorOf = (h: number) => `http://${net.addresses[h]}:${MONITOR_PORT}`;
    const serverOf = (host: number) => routed ? host : 0;

    // A host agent in each host namespace, on its own (or the only) server.
    const env = { SCMOE_NATS_TOKEN: token };
    const deno = [Deno.execPath(), "run", "-A", V8_HEAP_FLAG, `--config=${ROOT}deno.json`];
    const agentProcs = hostIds.map((h) =>
      start(h, [...deno, AGENT_MAIN, "--nats", urlOf(serverOf(h))], env)
    );
    const agents = await Promise.all(
      agentProcs.map(async (a) => (await a.waitFor(/agent (\w+) on/, 20_000, "agent"))[1]),
    );

    // The driver in a namespace of its own, on host 1's server when routed.
    const driverHost = routed ? 0 : nHosts + 1;
    const driver = start(driverHost, [
      ...deno,
      DRIVER_MAIN,
      "--cluster",
      urlOf(serverOf(1)),
      "--hosts",
      agents.join(","),
      "--out",
      `${dir}/run`,
      "--monitor",
      serverHosts.map(monitorOf).join(","),
      "--heartbeat-ms",
      String(opts.heartbeatMs ?? 3000),
      "--",
      ...opts.flags,
    ], env);
    const cut: MultihostResult["cut"] = opts.cut && { downAt: 0 };
    const cutting = opts.cut && (async ({ afterStep, forMs, host = 2 }) => {
      await driver.waitFor(new RegExp(`^step ${afterStep}$`, "m"), 60_000, "driver");
      await setLink(net, host, "down");
      cut!.downAt = Date.now();
      if (forMs === null) return;
      await new Promise((r) => setTimeout(r, forMs));
      await setLink(net, host, "up");
      cut!.upAt = Date.now();
    })(opts.cut);
    let killedAt: number | undefined;
    const killing = opts.killServer && routed && (async ({ afterStep, host }) => {
      await driver.waitFor(new RegExp(`^step ${afterStep}$`, "m"), 60_000, "driver");
      servers[serverHosts.indexOf(host)].kill("SIGKILL");
      killedAt = Date.now();
    })(opts.killServer).catch(() => {});
    const status = await driver.done;
    await cutting;
    await killing;
    const driverError = driver.stderr.trim().split("\n").pop() ?? "";
    if (status.code !== 0 && status.code !== 3) {
      throw new Error(`driver exited with ${status.code}: ${driver.stderr.trim()}`);
    }
    const line = driver.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
    if (status.code === 0 && !line) {
      throw new Error(`driver printed no report: ${driver.stdout}${driver.stderr}`);
    }
    const routes = servers.map((s) => (s.stderr.match(/Route connection created/g) ?? []).length);
    // An orderly stop: each agent stops its actor processes on SIGINT, then the servers go.
    agentProcs.forEach((a) => a.kill("SIGINT"));
    const agentExits = (await Promise.all(agentProcs.map((a) => a.exited))).map((s) => s.code);
    servers.forEach((s) => s.kill("SIGINT"));
    await Promise.all(servers.map((s) => s.exited));
    const leftover = (await pidsInside(net)).length;
    return {
      report: line ? JSON.parse(line) as DriverReport : undefined,
      driverExit: status.code,
      driverError,
      driverLog: driver.stderr,
      cut,
      killedAt,
      agents,
      routes,
      agentExits,
      leftover,
      hostAddresses: hostIds.map((h) => net.addresses[h]),
      hostServers: hostIds.map((h) => monitorOf(serverOf(h))),
    };
  } finally {
    clearTimeout(watchdog);
    // Agents stop their actor processes on SIGINT; whatever is left is killed.
    await job.close(true);
  }
}
