/**
 * `deno task bench simulate [--json] [--quick] [--hardware NAME] [--model NAME] [--measure] [--ranks]`:
 * the simulator (`models/simulate.ts`) on its hardware presets and models,
 * and its checks.
 *
 * - `case: "<hardware>/<model>/ep<N>/<variant>"`: the training step's
 *   `step_ms`, `compute_ms`, `comm_ms`, `exposed_ms`, `hidden_fraction`,
 *   `speedup_vs_top2`, `mfu`, and the forward pass's `infer_step_ms` and
 *   `infer_speedup_vs_top2`;
 * - `case: "validate/<what>"`: `predicted`, `measured_or_published` and
 *   `error_pct` beside each other (`simulate_validate.ts`): our own `tc`
 *   measurements (device fitted on top-2's op times alone, every other
 *   variant predicted), the paper's table, LongCat-Flash's exposed share;
 *   `validate/here/fit` gives the fitted rates and the median op error;
 * - with `--measure`: this machine's rates measured now (`measure/*`:
 *   `measureDeviceRates` of the wasm backend) and the model FLOP
 *   utilisation of a short training run of the tiny preset on 2 local ranks
 *   (`measure/train/mfu`);
 * - with `--ranks`: 2 and 4 rank Workers trained now on one emulated link,
 *   predicted beside measured (`validate/here/ranks/<N>/*`, see
 *   `simulate_ranks.ts`; with `--quick` a smaller model).
 *
 * @module
 */
import { parseCommand, usage } from "../cli/flags.ts";
import { HARDWARE, HARDWARE_NAMES } from "../models/hardware.ts";
import { SIM_MODEL_NAMES, SIM_MODELS, simulateVariants } from "../models/simulate.ts";
import { type BenchRow, printRows } from "./output.ts";
import { SIMULATE_COMMAND } from "./commands.ts";
import {
  type Check,
  checkAgainstLongCat,
  checkAgainstMeasured,
  checkAgainstPaper,
  checkRows,
  computeBreakdown,
  errorPct,
  LINK_MODEL,
  TC_FULL,
} from "./simulate_validate.ts";
import { median } from "../models/stats.ts";
import { measureRanks, ranksChecks } from "./simulate_ranks.ts";

/** The grid of the default run: hardware, models, expert-parallel sizes. */
export const GRID = {
  hardware: HARDWARE_NAMES,
  models: ["base", "gpt2-moe", "gpt3-moe-xl"],
  eps: [8, 64, 256],
} as const;

/** The grid of `--quick`. */
export const QUICK_GRID = {
  hardware: ["a30-pcie", "h100-ib"],
  models: ["base"],
  eps: [8, 64],
} as const;

/** Rows of one (hardware, model, ep) point: every variant. */
export function gridRows(hardware: string, model: string, ep: number): BenchRow[] {
  const m = SIM_MODELS[model];
  const results = simulateVariants(m.config, {
    hardware: HARDWARE[hardware],
    ep,
    batch: m.batch,
    seq: m.seq,
    routedK: m.routedK,
  });
  return results.flatMap((r) => {
    const c = `${hardware}/${model}/ep${ep}/${r.variant}`;
    const row = (metric: string, value: number, unit: string): BenchRow => ({
      bench: "simulate",
      case: c,
      metric,
      value,
      unit,
    });
    return [
      row("step_ms", r.train.stepMs, "ms"),
      row("compute_ms", r.train.computeMs, "ms"),
      row("comm_ms", r.train.commMs, "ms"),
      row("exposed_ms", r.train.exposedMs, "ms"),
      row("hidden_fraction", r.train.hiddenFraction, "ratio"),
      row("speedup_vs_top2", r.trainSpeedup, "x"),
      row("mfu", r.train.mfu, "ratio"),
      row("infer_step_ms", r.infer.stepMs, "ms"),
      row("infer_speedup_vs_top2", r.inferSpeedup, "x"),
    ];
  });
}

/** Median absolute errors of a set of checks: step times, speed-ups. */
export function summaryRows(label: string, checks: Check[], source: string): BenchRow[] {
  const abs = (keep: (c: Check) => boolean) => {
    const errs = checks.filter(keep).map((c) => Math.abs(errorPct(c)));
    return errs.length ? median(errs) : NaN;
  };
  const row = (metric: string, value: number): BenchRow => ({
    bench: "simulate",
    case: `validate/${label}/summary`,
    metric,
    value,
    unit: "%",
    reference: source,
  });
  return [
    row("step_ms_median_abs_error_pct", abs((c) => c.what.endsWith("_step_ms"))),
    row("speedup_median_abs_error_pct", abs((c) => c.what.endsWith("_speedup"))),
  ].filter((r) => Number.isFinite(r.value));
}

/** The checks' rows (`validate/*`), with the fitted rates of this machine. */
export function validationRows(): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const dir of [TC_FULL, LINK_MODEL]) {
    const { checks, fit } = checkAgainstMeasured(dir);
    const label = `here/${checks[0]?.case.split("/")[2] ?? "measured"}`;
    const source = checks[0]?.source ?? String(dir);
    const fitRow = (metric: string, value: number, unit: string): BenchRow => ({
      bench: "simulate",
      case: `validate/${label}/fit`,
      metric,
      value,
      unit,
      reference: `top-2's traced steps of ${source}`,
    });
    const d = fit.device;
    rows.push(
      fitRow("matmul_gflops", d.matmulFlopsPerS / 1e9, "GFLOP/s"),
      fitRow("batched_matmul_gflops", d.batchedFlopsPerS / 1e9, "GFLOP/s"),
      fitRow("copy_gbs", d.copyBytesPerS / 1e9, "GB/s"),
      fitRow("tanh_per_us", d.tanhPerS / 1e6, "1/us"),
      fitRow("kernel_us", d.kernelS * 1e6, "us"),
      fitRow("backward_factor", d.backwardFactor, "x"),
      fitRow("op_median_error_pct", fit.medianErrorPct, "%"),
    );
    rows.push(...checks.flatMap(checkRows), ...summaryRows(label, checks, source));
    for (const [term, share] of Object.entries(computeBreakdown(dir))) {
      rows.push({
        bench: "simulate",
        case: `validate/${label}/compute_breakdown`,
        metric: `${term}_share`,
        value: share,
        unit: "ratio",
        reference: "top-2's training step, fitted cost model",
      });
    }
  }
  const paper = checkAgainstPaper().checks;
  rows.push(...paper.flatMap(checkRows), ...summaryRows("paper", paper, "paper"));
  for (const ep of [32, 64]) rows.push(...checkAgainstLongCat(ep).checks.flatMap(checkRows));
  return rows;
}

/** This machine measured now: the backend's rates, and MFU of a short training run. */
async function measureRows(quick: boolean): Promise<BenchRow[]> {
  const { setupBackend } = await import("../models/backend.ts");
  const { measureDeviceRates } = await import("../models/device_rates.ts");
  const { train } = await import("../training/train.ts");
  await setupBackend("wasm");
  const rates = measureDeviceRates({ secondsEach: quick ? 0.2 : 0.5 });
  const row = (c: string, metric: string, value: number, unit: string): BenchRow => ({
    bench: "simulate",
    case: c,
    metric,
    value,
    unit,
  });
  const out = await Deno.makeTempDir({ prefix: "scmoe-mfu-" });
  try {
    const summary = await train({ steps: quick ? 4 : 12, out, evalEvery: 0 }, {
      verbose: false,
      checkpoints: false,
    });
    return [
      row("measure/device", "matmul_gflops", rates.matmulFlopsPerS / 1e9, "GFLOP/s"),
      row("measure/device", "batched_matmul_gflops", rates.batchedFlopsPerS / 1e9, "GFLOP/s"),
      row("measure/device", "memory_gbs", rates.memoryBytesPerS / 1e9, "GB/s"),
      row("measure/device", "copy_gbs", rates.copyBytesPerS / 1e9, "GB/s"),
      row("measure/device", "kernel_us", rates.kernelS * 1e6, "us"),
      row("measure/train", "model_gflops", (summary.mfu?.modelFlopsPerS ?? NaN) / 1e9, "GFLOP/s"),
      row("measure/train", "mfu", summary.mfu?.mfu ?? NaN, "ratio"),
      row("measure/train", "step_ms", summary.stepMs, "ms"),
    ];
  } finally {
    await Deno.remove(out, { recursive: true }).catch(() => {});
  }
}

/** The simulator against 2 and 4 ranks trained now, with each rank count's summary. */
async function ranksRows(quick: boolean, json: boolean): Promise<BenchRow[]> {
  const run = await measureRanks({ quick, log: (s) => json || console.error(s) });
  const checks = ranksChecks(run);
  return [
    ...checks.flatMap(checkRows),
    ...run.sizes.flatMap(({ ranks }) => {
      const mine = checks.filter((c) => c.case.startsWith(`validate/here/ranks/${ranks}/`));
      return summaryRows(`here/ranks/${ranks}`, mine, mine[0].source);
    }),
  ];
}

/** The benchmark's entry point. */
export async function runSimulateBench(args: string[]): Promise<void> {
  const f = parseCommand(SIMULATE_COMMAND, args);
  if (f.help) {
    console.log(usage(SIMULATE_COMMAND));
    return;
  }
  const quick = f.has("quick");
  const grid = quick ? QUICK_GRID : GRID;
  const hardware = f.has("hardware")
    ? [f.choice("hardware", HARDWARE_NAMES, "h100-ib")]
    : [...grid.hardware];
  const models = f.has("model") ? [f.choice("model", SIM_MODEL_NAMES, "base")] : [...grid.models];
  const eps = f.has("ep") ? [f.integer("ep", 8, 1, 1 << 16)] : [...grid.eps];
  const measure = f.has("measure");
  const rows: BenchRow[] = [];
  if (!f.has("validate-only")) {
    for (const h of hardware) {
      for (const m of models) for (const ep of eps) rows.push(...gridRows(h, m, ep));
    }
  }
  rows.push(...validationRows());
  if (measure) rows.push(...await measureRows(quick));
  if (f.has("ranks")) rows.push(...await ranksRows(quick, f.has("json")));
  printRows(rows, f.has("json"));
}
