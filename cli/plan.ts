/**
 * `deno task plan --hardware h100-ib --ep 64 --model base`: what ScMoE
 * would give on a cluster, before paying for it. The simulator
 * (`models/simulate.ts`) replays the model's own step program, planned by
 * the overlap scheduler, on the hardware preset: it prints the assumptions,
 * a table of every variant at the given expert-parallel size (step time,
 * compute, exposed and hidden communication, speed-up over top-2 in
 * training and inference), each variant's training speed-up at EP 2 to
 * 1,024, and writes that as an SVG chart.
 *
 * @module
 */
import { describeHardware, HARDWARE, HARDWARE_NAMES } from "../models/hardware.ts";
import {
  EP_SWEEP,
  expertsAt,
  SIM_MODEL_NAMES,
  SIM_MODELS,
  type SimModel,
  type SimResult,
  simulateVariants,
  sweepEp,
} from "../models/simulate.ts";
import { type Command, parseCommand, usage } from "./flags.ts";
import { lineChartSvg } from "./plan_chart.ts";
import { runCli } from "./run.ts";

/** `deno task plan`'s command line. */
export const PLAN_COMMAND: Command = {
  name: "deno task plan",
  summary: "Predicts each MoE variant's step time and speed-up over top-2 on a hardware " +
    "preset at an expert-parallel size, and charts the speed-up from EP 2 to 1,024.",
  flags: {
    hardware: {
      arg: "NAME",
      help: `hardware preset: ${HARDWARE_NAMES.join("|")} (default h100-ib)`,
    },
    model: { arg: "NAME", help: `model: ${SIM_MODEL_NAMES.join("|")} (default base)` },
    ep: {
      arg: "N",
      help: "expert-parallel ranks of the table, an integer from 1 to 65536 (default 64)",
    },
    dp: {
      arg: "N",
      help: "data-parallel replicas of the expert-parallel group, a positive integer (default 1)",
    },
    batch: {
      arg: "N",
      help: "sequences per rank and step, a positive integer (default the model's)",
    },
    seq: { arg: "N", help: "tokens per sequence, a positive integer (default the model's)" },
    out: {
      arg: "FILE",
      help: "where to write the SVG chart (default runs/plan-<hardware>-<model>.svg)",
    },
    json: { boolean: true, help: "print the results as JSON, not tables" },
  },
  epilog: [
    "Assumes balanced routing and ranks in step (no skew); see the printed assumptions.",
    "Add --debug to show the stack trace of an expected failure.",
  ].join("\n"),
};

/** The simulator's own assumptions, printed with every plan. */
export const ASSUMPTIONS: readonly string[] = [
  "the model's own step program (models/gpt.ts), planned by the overlap scheduler's own rules " +
  "(slot per pass, chunks where the exchanges outlast the window) on modelled times",
  "balanced routing (each rank receives k rows a local token), no dropped tokens, no skew between ranks",
  "experts per MoE layer: at least one per rank (the model's count rounded up to a multiple of EP)",
  "one communication stream for the all-to-alls; the dense gradients' bucketed all-reduce over " +
  "EP x DP ranks on a second stream, sharing no bandwidth with them",
  "top-2 is standard expert parallelism (every all-to-all awaited at once): every speed-up's baseline",
];

function pct(x: number): string {
  return `${(100 * x).toFixed(0)}%`;
}

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  return [line(header), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

/** The table of one expert-parallel size. */
export function resultTable(results: SimResult[]): string {
  return table(
    [
      "variant",
      "step ms",
      "compute ms",
      "a2a ms",
      "exposed ms",
      "hidden",
      "speed-up",
      "infer ms",
      "infer speed-up",
      "MFU",
    ],
    results.map((r) => [
      r.variant,
      r.train.stepMs.toFixed(2),
      r.train.computeMs.toFixed(2),
      r.train.commMs.toFixed(2),
      r.train.exposedMs.toFixed(2),
      pct(r.train.hiddenFraction),
      `${r.trainSpeedup.toFixed(3)}x`,
      r.infer.stepMs.toFixed(2),
      `${r.inferSpeedup.toFixed(3)}x`,
      pct(r.train.mfu),
    ]),
  );
}

/** The CLI: returns the exit code; expected failures are thrown for {@linkcode runCli}. */
export async function main(args: string[]): Promise<number> {
  const f = parseCommand(PLAN_COMMAND, args);
  if (f.help) {
    console.log(usage(PLAN_COMMAND));
    return 0;
  }
  const hwName = f.choice("hardware", HARDWARE_NAMES, "h100-ib");
  const modelName = f.choice("model", SIM_MODEL_NAMES, "base");
  const ep = f.integer("ep", 64, 1, 65536);
  const dp = f.integer("dp", 1, 1);
  const preset = SIM_MODELS[modelName];
  const model: SimModel = {
    ...preset,
    batch: f.integer("batch", preset.batch, 1),
    seq: f.integer("seq", preset.seq, 1),
  };
  model.config = { ...model.config, blockSize: Math.max(model.config.blockSize ?? 64, model.seq) };
  const out = f.string("out") ?? `runs/plan-${hwName}-${modelName}.svg`;
  const hardware = HARDWARE[hwName];
  const setup = { hardware, ep, dp, batch: model.batch, seq: model.seq, routedK: model.routedK };
  const results = simulateVariants(model.config, setup);
  const sweep = sweepEp(model, hardware, { dp });
  const names = results.map((r) => r.variant).filter((v) => v !== "top2");
  const speedups = (v: string) =>
    sweep.map((p) => p.results.find((r) => r.variant === v)!.trainSpeedup);

  const chart = lineChartSvg({
    title: `Predicted training speed-up over top-2: ${modelName} on ${hwName}`,
    subtitle: `${model.batch} x ${model.seq} tokens a rank, DP ${dp}; balanced routing, no skew ` +
      `(deno task plan prints every assumption)`,
    x: EP_SWEEP.map(String),
    xLabel: "expert-parallel ranks (EP)",
    yLabel: "speed-up over top-2 (x)",
    series: names.map((v) => ({ name: v, values: speedups(v) })),
    reference: 1,
  });
  const dir = out.includes("/") ? out.slice(0, out.lastIndexOf("/")) : "";
  if (dir) await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(out, chart);

  if (f.has("json")) {
    const brief = (r: SimResult) => ({
      variant: r.variant,
      step_ms: r.train.stepMs,
      compute_ms: r.train.computeMs,
      comm_ms: r.train.commMs,
      exposed_ms: r.train.exposedMs,
      hidden_fraction: r.train.hiddenFraction,
      speedup_vs_top2: r.trainSpeedup,
      infer_step_ms: r.infer.stepMs,
      infer_speedup_vs_top2: r.inferSpeedup,
      mfu: r.train.mfu,
    });
    console.log(JSON.stringify({
      hardware: hwName,
      model: modelName,
      ep,
      dp,
      batch: model.batch,
      seq: model.seq,
      experts: expertsAt(model.config.nExperts ?? 4, ep),
      assumptions: [...describeHardware(hardware), ...ASSUMPTIONS],
      results: results.map(brief),
      sweep: sweep.map((p) => ({ ep: p.ep, results: p.results.map(brief) })),
      chart: out,
    }));
    return 0;
  }
  console.log(`Plan: ${modelName} on ${hwName}, EP ${ep}, DP ${dp} (${ep * dp} ranks)`);
  console.log("");
  console.log("Assumptions:");
  for (const line of describeHardware(hardware)) console.log(`  ${line}`);
  console.log(`  model: ${model.summary}`);
  console.log(
    `  ${model.batch} x ${model.seq} tokens a rank; ${expertsAt(model.config.nExperts ?? 4, ep)} ` +
      `experts a MoE layer at EP ${ep}` +
      (model.routedK ? `; ${model.routedK} routed a token (cost)` : ""),
  );
  for (const a of ASSUMPTIONS) console.log(`  - ${a}`);
  console.log("");
  console.log(`At EP ${ep} (one training step, one rank; speed-ups over top-2):`);
  console.log(resultTable(results));
  console.log("");
  console.log("Training speed-up over top-2 by expert-parallel size:");
  console.log(table(
    ["variant", ...EP_SWEEP.map((e) => `EP ${e}`)],
    names.map((v) => [v, ...speedups(v).map((x) => x.toFixed(2))]),
  ));
  console.log("");
  console.log(`chart: ${out}`);
  return 0;
}

if (import.meta.main) await runCli(main);
