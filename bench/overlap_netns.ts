/**
 * The overlap cases of `overlap.ts` on 2 rank processes in network
 * namespaces over the `nats` transport, with real shaping (root only):
 *
 * - two namespaces on one bridge (`collectives/netns.ts`), rank r in
 *   namespace r, and two nats-servers in namespace 0: the expert-parallel
 *   server on {@linkcode SHAPED_PORT} and an unshaped one on
 *   {@linkcode UNSHAPED_PORT};
 * - each namespace's egress shapes only TCP traffic from or to
 *   {@linkcode SHAPED_PORT}, so each direction between the ranks crosses one
 *   link of the given rate: rank 0 reaches the servers over loopback, so
 *   its bytes are shaped on their way out of namespace 0 from the server to
 *   rank 1, and rank 1's on their way out of namespace 1 to the server. The
 *   other server's traffic (the dense-gradient group, or every group of an
 *   unshaped run) crosses no shaping;
 * - the rate changes in place between runs (`tc class change`); the rank
 *   processes are started per run; the control channel is a request file
 *   and a result file per rank, never the network.
 *
 * No latency is added (this kernel has no `netem`): a link's `latencyS`
 * must be 0; the real path's own latency (two NATS hops) is part of the
 * unshaped transfer time that calibrations measure.
 *
 * @module
 */
import { deserialize, serialize } from "node:v8";
import { type NatsServer, startNatsServer } from "../actors/nats_server.ts";
import { credentialsToEnv } from "../collectives/nats_connect.ts";
import { createShapedHosts, type ShapedHosts } from "../collectives/netns.ts";
import type { NatsGroupSpec } from "../collectives/types.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";
import type { CaseResult, OverlapCase, RanksOptions } from "./overlap.ts";

/** Port of the expert-parallel nats-server, whose traffic is shaped. */
export const SHAPED_PORT = 4222;

/** Port of the unshaped nats-server (the dense-gradient group; every group of an unshaped run). */
export const UNSHAPED_PORT = 4223;

const RANK_MAIN = new URL("./overlap_netns_rank.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** What a rank process reads (see `overlap_netns_rank.ts`). */
export interface ProcessRankRequest {
  /** Its expert-parallel group (credentials come from the environment). */
  spec: NatsGroupSpec;
  /** Its dense-gradient group, when not `spec`. */
  gradSpec?: NatsGroupSpec;
  /** tfjs backend. */
  backend: string;
  /** The cases to run. */
  cases: OverlapCase[];
  /** Step after step across the cases. */
  interleave?: boolean;
}

/** Options of {@linkcode startShapedRanks}. */
export interface ShapedRanksOptions {
  /** Third octet of the namespaces' 10.213.x.0/24 network (default 60). */
  net?: number;
}

/** Two shaped rank hosts and their servers; {@linkcode ShapedRanks.close} removes them. */
export interface ShapedRanks {
  /** The network namespaces (the bridge's is removed with them). */
  namespaces: string[];
  /**
   * Runs `cases` as `runOnRanks` does, on 2 rank processes: with `link`,
   * the expert-parallel group crosses a tc-shaped link of its bandwidth
   * (`latencyS` must be 0); without, the unshaped server. `gradLink: null`
   * sums dense gradients over a second group on the unshaped server;
   * omitted, over the expert-parallel group.
   */
  run(cases: OverlapCase[], opts?: RanksOptions): Promise<CaseResult[][]>;
  /** Kills running rank processes, stops the servers and deletes the namespaces. */
  close(): Promise<void>;
}

/** SIGKILLs a child process unless it has exited. */
function kill(c: Deno.ChildProcess): void {
  try {
    c.kill("SIGKILL");
  } catch { /* already exited */ }
}

/** The tc rate of a link of `bytesPerS` payload bytes per second. */
function mbit(bytesPerS: number): number {
  return Math.max(0.01, Math.round(bytesPerS * 8 / 1e3) / 1e3);
}

/**
 * Runs the rank processes of one run and reads their results; on the first
 * failure kills the rest. `running` holds them while they run.
 */
async function runProcesses(
  net: ShapedHosts,
  requests: ProcessRankRequest[],
  env: Record<string, string>,
  dir: string,
  running: Set<Deno.ChildProcess>,
): Promise<CaseResult[][]> {
  const run = crypto.randomUUID().slice(0, 8);
  const files = requests.map((_, r) => [`${dir}/${run}-${r}.req`, `${dir}/${run}-${r}.out`]);
  await Promise.all(requests.map((req, r) => Deno.writeFile(files[r][0], serialize(req))));
  const children = requests.map((_, r) =>
    net.command(r, [
      Deno.execPath(),
      "run",
      "-A",
      V8_HEAP_FLAG,
      `--config=${CONFIG}`,
      RANK_MAIN,
      ...files[r],
    ], {
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn()
  );
  children.forEach((c) => running.add(c));
  const killAll = () => children.forEach(kill);
  let failure: Error | undefined;
  try {
    await Promise.all(children.map(async (c, r) => {
      const out = await c.output();
      if (out.success || failure) return;
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-20).join("\n");
      failure = new Error(`rank process ${r} failed (exit ${out.code}): ${err}`);
      killAll();
    }));
    if (failure) throw failure;
    return await Promise.all(files.map(async ([, out]) => deserialize(await Deno.readFile(out))));
  } finally {
    killAll();
    await Promise.all(children.map((c) => c.status));
    children.forEach((c) => running.delete(c));
    for (const f of files.flat()) await Deno.remove(f).catch(() => {});
  }
}

/**
 * Builds the namespaces and starts the servers (root only; `ip`, `tc` and
 * `nats-server` needed).
 *
 * @example
 * ```ts ignore
 * import { startShapedRanks } from "./overlap_netns.ts";
 * const ranks = await startShapedRanks();
 * const link = { bandwidthBytesPerS: 5e6, latencyS: 0 };
 * const perRank = await ranks.run([{
 *   name: "pos2", model: { variant: "scmoe", nLayer: 2 }, schedule: {}, steps: 2, rows: 2, seq: 16,
 * }], { link, gradLink: null });
 * await ranks.close();
 * ```
 */
export async function startShapedRanks(opts: ShapedRanksOptions = {}): Promise<ShapedRanks> {
  const net = await createShapedHosts({
    hosts: 2,
    rateMbit: 1000,
    net: opts.net ?? 60,
    ports: [SHAPED_PORT],
  });
  const servers: NatsServer[] = [];
  const running = new Set<Deno.ChildProcess>();
  let dir: string | undefined;
  const close = async () => {
    running.forEach(kill);
    await Promise.all([...running].map((c) => c.status));
    for (const s of servers.splice(0)) await s.stop();
    await net.destroy();
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    dir = await Deno.makeTempDir({ prefix: "scmoe-shaped-ranks-" });
    const token = crypto.randomUUID().replaceAll("-", "");
    for (const port of [SHAPED_PORT, UNSHAPED_PORT]) {
      servers.push(
        await startNatsServer({ netns: net.namespaces[0], host: net.addresses[0], port, token }),
      );
    }
    const env = credentialsToEnv({ servers: [], token });
    const [shaped, unshaped] = servers.map((s) => s.url);
    const run = async (cases: OverlapCase[], o: RanksOptions = {}) => {
      if ((o.size ?? 2) !== 2) throw new Error("shaped ranks: 2 ranks only");
      if (o.gradLink) throw new Error("shaped ranks: the dense-gradient group is unshaped or none");
      if (o.link?.latencyS) throw new Error("shaped ranks: no latency can be added (no netem)");
      if (o.link) await net.setRate(mbit(o.link.bandwidthBytesPerS));
      const groupId = `overlap-${crypto.randomUUID().slice(0, 8)}`;
      const jobId = crypto.randomUUID();
      const group = (id: string, url: string, rank: number): NatsGroupSpec => ({
        kind: "nats",
        groupId: id,
        rank,
        size: 2,
        jobId,
        servers: [url],
        timeoutMs: 120_000,
      });
      const requests = [0, 1].map((rank): ProcessRankRequest => ({
        spec: group(groupId, o.link ? shaped : unshaped, rank),
        gradSpec: o.gradLink === null ? group(`${groupId}-grads`, unshaped, rank) : undefined,
        backend: o.backend ?? "wasm",
        cases,
        interleave: o.interleave,
      }));
      return await runProcesses(net, requests, env, dir!, running);
    };
    return { namespaces: net.namespaces, run, close };
  } catch (e) {
    await close();
    throw e;
  }
}
