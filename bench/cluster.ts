/**
 * `deno task bench cluster [--json] [--quick] [--rate MBIT]`: all-to-all
 * bandwidth across emulated hosts on NATS (root only): N host namespaces on
 * one bridge, each host's egress shaped to `--rate` by `tc`, one rank
 * process per host, for N = 2 and 4 and two layouts of the servers:
 *
 * - `single`: one nats-server in a namespace of its own; every message
 *   crosses its link twice (in, then out to its receiver), so its egress
 *   carries all `N (N - 1)` parts of an all-to-all: the bound on a host
 *   link's busbw is `rate / N`;
 * - `routed`: a cluster of N servers, one per host, routed to each other in
 *   a full mesh, each rank on its own host's server: a host's link carries
 *   its own rank's `N - 1` parts, one route to each peer's server, so the
 *   bound is the link's `rate`.
 *
 * Per case: the median time of an all-to-all of `part` bytes to each peer,
 * and in the nccl-tests convention `algbw = N * part / time` and
 * `busbw = algbw * (N - 1) / N` (bytes a rank sends to its peers per
 * second), beside the bound and as a percentage of it. An unshaped run of
 * each case (`rate` 10000) shows the ceiling of this machine itself: N rank
 * processes, their communication workers and the servers share 2 cores.
 *
 * @module
 */
import { parseCommand, usage } from "../cli/flags.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";
import { CLUSTER_COMMAND } from "./commands.ts";
import { HostJob } from "../harness/multihost.ts";
import { type BenchRow, median, printRows } from "./output.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const RANK_MAIN = `${ROOT}bench/cluster_rank.ts`;

/** One measured case. */
export interface ClusterCase {
  /** Hosts (and ranks). */
  hosts: number;
  /** Where the servers are. */
  layout: "single" | "routed";
  /** Each host's egress rate, Mbit/s. */
  rateMbit: number;
  /** Bytes to each peer. */
  partBytes: number;
}

/** What a case measured. */
export interface ClusterResult extends ClusterCase {
  /** Median all-to-all time over the ranks' timed calls, ms. */
  ms: number;
  /** `hosts * part / time`, bytes/s. */
  algbw: number;
  /** `algbw * (hosts - 1) / hosts`, bytes/s. */
  busbw: number;
  /** The layout's bound on busbw: `rate / hosts` (single) or `rate` (routed), bytes/s. */
  bound: number;
  /** Every rank checked what it received. */
  ok: boolean;
}

/** The busbw bound of a layout on links of `rateMbit`, bytes/s. */
export function busbwBound(c: Pick<ClusterCase, "hosts" | "layout" | "rateMbit">): number {
  const rate = (c.rateMbit * 1e6) / 8;
  return c.layout === "single" ? rate / c.hosts : rate;
}

/** Runs one case in fresh namespaces; everything started is stopped and removed. */
export async function runClusterCase(
  c: ClusterCase,
  opts: { net: number; warmup: number; reps: number },
): Promise<ClusterResult> {
  const single = c.layout === "single";
  const hosts = await HostJob.create({
    hosts: single ? c.hosts + 1 : c.hosts,
    rateMbit: c.rateMbit,
    net: opts.net,
    prefix: "scmoe-cluster-",
  });
  const { net, token } = hosts;
  const start = (host: number, cmd: string[], env: Record<string, string> = {}) =>
    hosts.start(host, cmd, env);
  try {
    const rankHost = (r: number) => (single ? r + 1 : r);
    await hosts.startServers(single ? [0] : Array.from({ length: c.hosts }, (_, r) => r), !single);
    const job = crypto.randomUUID().slice(0, 8);
    const ranks = Array.from({ length: c.hosts }, (_, r) => {
      const server = net.addresses[single ? 0 : r];
      return start(rankHost(r), [
        Deno.execPath(),
        "run",
        "-A",
        V8_HEAP_FLAG,
        `--config=${ROOT}deno.json`,
        RANK_MAIN,
        `nats://${server}:4222`,
        job,
        String(r),
        String(c.hosts),
        String(c.partBytes),
        String(opts.warmup),
        String(opts.reps),
      ], { SCMOE_NATS_TOKEN: token });
    });
    const outs = await Promise.all(ranks.map(async (p) => {
      const status = await p.done;
      const line = p.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
      if (status.code !== 0 || !line) {
        throw new Error(
          `rank exited ${status.code}: ${p.stderr.trim().split("\n").slice(0, 3).join(" | ")}`,
        );
      }
      return JSON.parse(line) as { ms: number[]; ok: boolean };
    }));
    // An all-to-all takes its slowest rank's time: the median over calls of the slowest.
    const perCall = outs[0].ms.map((_, i) => Math.max(...outs.map((o) => o.ms[i])));
    const ms = median(perCall);
    const algbw = (c.hosts * c.partBytes) / (ms / 1e3);
    return {
      ...c,
      ms,
      algbw,
      busbw: (algbw * (c.hosts - 1)) / c.hosts,
      bound: busbwBound(c),
      ok: outs.every((o) => o.ok),
    };
  } finally {
    await hosts.close(false);
  }
}

/** The benchmark's entry point. */
export async function runClusterBench(args: string[]): Promise<void> {
  const f = parseCommand(CLUSTER_COMMAND, args);
  if (f.help) {
    console.log(usage(CLUSTER_COMMAND));
    return;
  }
  const quick = f.has("quick");
  const rateMbit = f.number("rate", 20, { max: 10_000 });
  const partBytes = quick ? 256 * 1024 : 1024 * 1024;
  const rows: BenchRow[] = [];
  let net = 100;
  for (const hosts of [2, 4]) {
    for (const layout of ["single", "routed"] as const) {
      for (const rate of quick ? [rateMbit] : [rateMbit, 10_000]) {
        const r = await runClusterCase(
          { hosts, layout, rateMbit: rate, partBytes },
          { net: net++, warmup: 2, reps: quick ? 4 : 8 },
        );
        const c = `${layout}/${hosts}-hosts/${rate}mbit`;
        const row = (
          metric: string,
          value: number,
          unit: string,
          reference?: string,
        ): BenchRow => ({
          bench: "cluster",
          case: c,
          metric,
          value,
          unit,
          ...(reference ? { reference } : {}),
        });
        rows.push(
          row("alltoall_ms", r.ms, "ms"),
          row("algbw", r.algbw / 1e6, "MB/s"),
          row("busbw", r.busbw / 1e6, "MB/s", `bound ${(r.bound / 1e6).toFixed(1)} MB/s`),
          row("busbw_pct_of_bound", (100 * r.busbw) / r.bound, "%"),
          row(
            "bound",
            r.bound / 1e6,
            "MB/s",
            layout === "single" ? "one server: rate / N" : "the host link",
          ),
          row("ok", r.ok ? 1 : 0, "bool"),
        );
      }
    }
  }
  printRows(rows, f.has("json"));
}
