/**
 * `deno task bench actors`: call throughput and payload round trips of the
 * actor runtime on both clusters (and on `nats` without direct links),
 * beside Ray's published figures.
 *
 * @module
 */
import { get, init, remote, shutdown } from "../actors/mod.ts";
import type { Hammer, Target } from "./bench_actors.ts";
import { type BenchRow, median, printRows } from "./output.ts";
import { parseCommand, usage } from "../cli/flags.ts";
import { ACTORS_CLUSTERS, ACTORS_COMMAND } from "./commands.ts";

const MODULE = new URL("./bench_actors.ts", import.meta.url);
const TargetActor = remote<typeof Target>(MODULE, "Target");
const HammerActor = remote<typeof Hammer>(MODULE, "Hammer");

/** Ray's release microbenchmarks (see shared ANCHORS.md). */
const RAY = {
  sync_calls_per_s: "Ray 2,012/s",
  async_calls_per_s: "Ray 8,664/s",
  nn_async_calls_per_s: "Ray 27,376/s",
};

/** The clusters measured ({@linkcode ACTORS_CLUSTERS}). */
type BenchCluster = typeof ACTORS_CLUSTERS[number];

async function measureCluster(cluster: BenchCluster, quick: boolean): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const add = (metric: string, value: number, unit: string, reference?: string) =>
    rows.push({ bench: "actors", case: cluster, metric, value, unit, reference });
  await init({
    cluster: cluster === "local" ? "local" : "nats",
    directLinks: cluster !== "nats-bus",
  });
  try {
    const target = await TargetActor.remote();
    const syncN = quick ? 500 : 3000;
    const asyncN = quick ? 2000 : 20000;
    for (let i = 0; i < 200; i++) await target.ping(i); // warm-up
    const rates = async (fn: () => Promise<number>) => median([await fn(), await fn(), await fn()]);
    add(
      "sync_calls_per_s",
      await rates(async () => {
        const t0 = performance.now();
        for (let i = 0; i < syncN; i++) await target.ping(i);
        return syncN / ((performance.now() - t0) / 1000);
      }),
      "calls/s",
      RAY.sync_calls_per_s,
    );
    add(
      "async_calls_per_s",
      await rates(async () => {
        const t0 = performance.now();
        const refs = [];
        for (let i = 0; i < asyncN; i++) refs.push(target.ping(i));
        await get(refs);
        return asyncN / ((performance.now() - t0) / 1000);
      }),
      "calls/s",
      RAY.async_calls_per_s,
    );
    const names = ["t0", "t1"];
    await Promise.all(names.map((name) => TargetActor.options({ name }).remote()));
    const hammers = await Promise.all([HammerActor.remote(), HammerActor.remote()]);
    await get(hammers.map((h) => h.run(names, 200)));
    add(
      "nn_async_calls_per_s",
      await rates(async () => {
        const t0 = performance.now();
        await get(hammers.map((h) => h.run(names, asyncN / 2)));
        return asyncN / ((performance.now() - t0) / 1000);
      }),
      "calls/s",
      RAY.nn_async_calls_per_s,
    );
    for (const [metric, mib] of [["roundtrip_1mib_ms", 1], ["roundtrip_8mib_ms", 8]] as const) {
      const payload = new Float32Array((mib << 20) / 4).fill(1.5);
      await target.echo(payload);
      const times = [];
      for (let i = 0; i < (quick ? 5 : 20); i++) {
        const t0 = performance.now();
        await target.echo(payload);
        times.push(performance.now() - t0);
      }
      add(metric, median(times), "ms");
    }
  } finally {
    await shutdown();
  }
  return rows;
}

/**
 * Runs the benchmark with CLI arguments `--json`, `--quick`, `--cluster
 * local|nats|nats-bus` ({@linkcode ACTORS_COMMAND}); `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runActorsBench(args: string[]): Promise<void> {
  const f = parseCommand(ACTORS_COMMAND, args);
  if (f.help) return console.log(usage(ACTORS_COMMAND));
  const json = f.has("json"), quick = f.has("quick");
  const clusters: BenchCluster[] = f.has("cluster")
    ? [f.choice("cluster", ACTORS_CLUSTERS, "local")]
    : [...ACTORS_CLUSTERS];
  const rows: BenchRow[] = [];
  for (const c of clusters) rows.push(...await measureCluster(c, quick));
  rows.push({
    bench: "actors",
    case: "machine",
    metric: "cores",
    value: navigator.hardwareConcurrency,
    unit: "",
  });
  printRows(rows, json);
}
