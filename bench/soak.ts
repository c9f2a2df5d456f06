/**
 * `deno task bench soak [--json] [--quick]`: a long training run on a local
 * cluster (2 ranks, checkpoints and validation on) that samples memory every
 * few steps: the driver's resident set and JS heap, and each rank's
 * {@linkcode RankMemory} (on a local cluster ranks are Workers, so their
 * resident set is the driver's process). After a warm-up (the first quarter
 * of the steps) it reports the least-squares slope of each figure per 100
 * steps, and the first and last sample; no growth is expected.
 *
 * @module
 */
import type { RankMemory } from "../mod.ts";
import { type BenchRow, printRows } from "./output.ts";
import { trainWithArgs } from "../cli/train.ts";
import { parseCommand, usage } from "../cli/flags.ts";
import { SOAK_COMMAND } from "./commands.ts";

/** One memory sample, taken after `step`. */
interface Sample {
  step: number;
  driverRss: number;
  driverHeap: number;
  ranks: RankMemory[];
}

/** Least-squares slope of `ys` over `xs`. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * Runs the soak and prints its figures (JSON lines with `--json`), on a
 * command line of {@linkcode SOAK_COMMAND}; `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runSoakBench(args: string[]): Promise<void> {
  const f = parseCommand(SOAK_COMMAND, args);
  if (f.help) return console.log(usage(SOAK_COMMAND));
  const json = f.has("json");
  const steps = f.has("quick") ? 160 : 1000;
  const every = steps / 40;
  const dir = await Deno.makeTempDir({ prefix: "bench_soak_" });
  const samples: Sample[] = [];
  const t0 = performance.now();
  try {
    await trainWithArgs([
      ...["--steps", String(steps), "--batch", "8", "--seq", "32", "--ranks", "2"],
      ...["--eval-every", String(steps / 8), "--ckpt-every", String(steps / 4), "--out", dir],
    ], {
      verbose: false,
      onStep: async (step, group) => {
        if (step % every !== 0) return;
        const { rss, heapUsed } = Deno.memoryUsage();
        const ranks = await group.all((r) => r.memory());
        samples.push({ step, driverRss: rss, driverHeap: heapUsed, ranks });
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const kept = samples.filter((s) => s.step > steps / 4);
  const rows: BenchRow[] = [];
  const row = (metric: string, value: number, unit: string) =>
    rows.push({ bench: "soak", case: "local-2-ranks", metric, value, unit });
  row("steps", steps, "steps");
  row("wall", (performance.now() - t0) / 1000, "s");
  row("samples_after_warmup", kept.length, "samples");
  const figure = (name: string, pick: (s: Sample) => number, mib: boolean) => {
    const scale = mib ? 1 / 2 ** 20 : 1;
    const ys = kept.map((s) => pick(s) * scale);
    const unit = mib ? "MiB" : "tensors";
    row(`${name}_first`, ys[0], unit);
    row(`${name}_last`, ys.at(-1)!, unit);
    row(`${name}_slope`, slope(kept.map((s) => s.step), ys) * 100, `${unit}/100 steps`);
  };
  figure("driver_rss", (s) => s.driverRss, true);
  figure("driver_heap", (s) => s.driverHeap, true);
  for (let r = 0; r < (kept[0]?.ranks.length ?? 0); r++) {
    figure(`rank${r}_heap`, (s) => s.ranks[r].heapUsed, true);
    figure(`rank${r}_tensor_bytes`, (s) => s.ranks[r].tensorBytes, true);
    figure(`rank${r}_tensors`, (s) => s.ranks[r].numTensors, false);
  }
  printRows(rows, json);
}
