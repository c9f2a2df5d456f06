/**
 * `deno task bench report [--quick] [--name NAME] [--skip-quality] [--link-model]`: runs the
 * scenario benchmark (and `deno task bench quality`, as a subprocess with
 * `--json`) and writes `bench/results/NAME/report.md` (default NAME
 * `latest`) with the tables beside the paper's figures, SVG bar charts of the
 * speed-ups per scenario, an SVG timeline of the median training step of
 * every variant (and its Chrome trace, `timeline_<scenario>.json`), the raw
 * rows as JSON lines, the exact commands and the machine. The links are
 * shaped as `deno task bench scenarios` shapes them (`tc` as root, else or
 * with `--link-model` the link model); the Method section says which.
 *
 * `deno task bench report --from DIR` runs nothing: it draws the charts of
 * the report in DIR again from its `scenarios.jsonl` and timeline traces
 * ({@linkcode redrawReport}).
 *
 * @module
 */
import { parseCommand, usage, UsageError } from "../cli/flags.ts";
import { fromFlag, REPORT_COMMAND } from "./commands.ts";
import { barChartSvg } from "./bar_chart_svg.ts";
import { type BenchRow, formatFigure } from "./output.ts";
import {
  chooseShaping,
  exitOnShapingError,
  measureScenarios,
  ON_LINK,
  SCENARIO_VARIANTS,
  SCENARIOS,
  type Shaping,
  SHARE_TOLERANCE,
  SHARE_TRIES,
  type StepKind,
  unshapedShare,
} from "./scenarios.ts";
import { headlineLines } from "./report_headline.ts";
import { timelineSvg } from "./timeline_svg.ts";
import { chromeTrace, fromChromeTrace } from "../models/trace.ts";
import { speedupSources, whyShort } from "./report_why.ts";
import { qualityMarkdown, type QualityResult } from "./quality.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";

/**
 * The paper's figures for ScMoE Pos-2 (arXiv:2404.05019), the targets:
 * `[train, infer, hidden]`, its speed-ups over top-2 and the share of
 * communication it hides (70% on A30 PCIe; all of it on A800 NVLink, here
 * at least 0.95).
 */
const TARGETS: Record<string, [number, number, number]> = {
  pcie: [1.43, 1.66, 0.7],
  nvlink: [1.12, 1.17, 0.95],
};

/** The method's sentence on the ranks and how their links were shaped. */
function shapingText(shaping: Shaping): string {
  if (shaping === "tc") {
    return "2 rank processes, each in its own network namespace and with its own communication " +
      'worker, over the `nats` transport. Shaping: **real, tc** (`shaping: "tc"`): the ' +
      "expert-parallel group's nats-server sits in rank 0's namespace and each namespace's " +
      "egress shapes that server's port with an htb class of the scenario's bandwidth (9000-byte " +
      "jumbo packets, one at a time; a burst of 1 ms, at least one packet), so each direction of an all-to-all crosses one link of that rate; " +
      "the dense-gradient group (and every group in the calibration) uses a second nats-server " +
      "that is not shaped. No latency is added (this kernel has no netem); the path's own " +
      "latency through NATS is part of the measured unshaped transfer time.";
  }
  return "2 rank Workers, each with its own communication worker. Shaping: **link model** " +
    '(`shaping: "link-model"`): the all-to-all frames are paced by an emulated link of the ' +
    "scenario's bandwidth and 0.2 ms latency; no real `tc` shaping was used.";
}

/** The machine, as markdown lines. */
async function machine(shaping: Shaping): Promise<string[]> {
  const cpu = await Deno.readTextFile("/proc/cpuinfo")
    .then((t) => /model name\s*:\s*(.*)/.exec(t)?.[1] ?? "unknown")
    .catch(() => "unknown");
  const mem = Deno.systemMemoryInfo();
  return [
    `- CPU: ${cpu}, ${navigator.hardwareConcurrency} cores (2 rank ${
      shaping === "tc" ? "processes" : "Workers"
    }, wasm backend)`,
    `- memory: ${(mem.total / 2 ** 30).toFixed(1)} GiB`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.os} ${Deno.build.arch}`,
    `- load average at the end: ${Deno.loadavg().map((v) => v.toFixed(2)).join(", ")}`,
  ];
}

/** A markdown table. */
function table(header: string[], body: string[][]): string[] {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...body.map((r) => `| ${r.join(" | ")} |`),
  ];
}

/**
 * Runs `deno task bench quality --out DIR/quality` and returns what it
 * found (its `quality.json`), or why it failed.
 */
async function qualityResult(quick: boolean, dir: string): Promise<QualityResult | string> {
  const args = [
    "run",
    "-A",
    V8_HEAP_FLAG,
    new URL("./main.ts", import.meta.url).pathname,
    "quality",
    "--json",
    "--out",
    `${dir}quality`,
  ];
  const out = await new Deno.Command(Deno.execPath(), {
    args: quick ? [...args, "--quick"] : args,
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!out.success) return `the quality benchmark exited with code ${out.code}`;
  return JSON.parse(await Deno.readTextFile(`${dir}quality/quality.json`));
}

/** The bar chart of a scenario's speed-ups over top-2, measured and the paper's. */
export function speedupChart(
  scenario: string,
  value: (c: string, metric: string) => number,
): string {
  const spec = SCENARIOS[scenario];
  return barChartSvg({
    title: `${scenario}: speed-up of the step over top-2; the paper: ${spec.setting}`,
    categories: SCENARIO_VARIANTS.map(([v]) => v),
    series: [0, 1].map((i) => ({
      name: i === 0 ? "training, measured" : "inference, measured",
      colour: i === 0 ? "#1f77b4" : "#ff7f0e",
      values: SCENARIO_VARIANTS.map(([v]) =>
        value(`${scenario}/${v}`, i === 0 ? "train_speedup" : "infer_speedup")
      ),
      references: SCENARIO_VARIANTS.map(([v]) => spec.paper[v]?.[i] ?? null),
    })),
    referenceName: "the paper's speed-up",
    baselineName: "top-2 (1.0)",
  });
}

/**
 * Draws the charts of the report in `dir` again from its saved data, running
 * nothing: `speedup_<scenario>.svg` from `scenarios.jsonl`, and
 * `timeline_<scenario>.svg` from `timeline_<scenario>.json` where present.
 */
export async function redrawReport(dir: string): Promise<void> {
  const rows: BenchRow[] = (await Deno.readTextFile(`${dir}/scenarios.jsonl`)).split("\n")
    .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const value = (c: string, metric: string) => {
    const v = rows.find((r) => r.case === c && r.metric === metric)?.value;
    return typeof v === "number" ? v : NaN;
  };
  for (const scenario of Object.keys(SCENARIOS)) {
    if (!rows.some((r) => r.case.startsWith(`${scenario}/`))) continue;
    await Deno.writeTextFile(`${dir}/speedup_${scenario}.svg`, speedupChart(scenario, value));
    const trace = await Deno.readTextFile(`${dir}/timeline_${scenario}.json`).catch(() => null);
    if (trace !== null) {
      await Deno.writeTextFile(
        `${dir}/timeline_${scenario}.svg`,
        timelineSvg(fromChromeTrace(JSON.parse(trace))),
      );
    }
    console.error(
      `wrote ${dir}/speedup_${scenario}.svg${trace === null ? "" : " and its timeline"}`,
    );
  }
}

/**
 * The benchmark's entry point, on a command line of {@linkcode REPORT_COMMAND};
 * `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runReportBench(args: string[]): Promise<void> {
  const f = parseCommand(REPORT_COMMAND, args);
  if (f.help) return console.log(usage(REPORT_COMMAND));
  const from = fromFlag(f, "from", "scenarios.jsonl");
  const name = f.string("name") ?? "latest";
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name)) {
    throw new UsageError(
      `--name must be a directory name of letters, digits, '.', '_' and '-', ` +
        `not starting with '.' (got ${JSON.stringify(name)})`,
    );
  }
  const values = {
    quick: f.has("quick"),
    name,
    "skip-quality": f.has("skip-quality"),
    "link-model": f.has("link-model"),
  };
  if (from !== undefined) return await redrawReport(from);
  const quick = values.quick;
  const dir = new URL(`./results/${values.name}/`, import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const started = new Date().toISOString();
  const t0 = performance.now();
  const res = await measureScenarios(
    quick,
    (s) => console.error(s),
    chooseShaping(values["link-model"]),
  ).catch(exitOnShapingError);
  const scenariosS = (performance.now() - t0) / 1e3;
  const value = (c: string, metric: string) => {
    const v = res.rows.find((r) => r.case === c && r.metric === metric)?.value;
    return typeof v === "number" ? v : NaN;
  };

  const q = quick ? " --quick" : "";
  const lm = values["link-model"] ? " --link-model" : "";
  const md: string[] = [
    `# ScMoE bandwidth scenarios: speed-ups over top-2, measured here beside the paper`,
    "",
    `Run ${started}; scenarios took ${scenariosS.toFixed(0)} s.`,
    "",
    "## Commands",
    "",
    "```sh",
    `deno task bench report${q}${lm}${values.name === "latest" ? "" : ` --name ${values.name}`}${
      values["skip-quality"] ? " --skip-quality" : ""
    }`,
    `deno task bench scenarios${q}${lm} --json   # the same figures alone`,
    ...(values["skip-quality"] ? [] : [`deno task bench quality${q} --json`]),
    "```",
    "",
    "## Machine",
    "",
    ...await machine(res.shaping),
    "",
    "## Method",
    "",
    `One MoE block pair (a dense block, then an MoE block; d=${res.sizes.nEmbd}, 4 experts, ` +
    `${res.sizes.rows}x${res.sizes.seq} tokens per rank and step) on ` +
    shapingText(res.shaping) + " Calibration: one unshaped serial top-2 run per kind " +
    "of step (" + (["train", "infer"] as const).map((k) => {
      const c = res.calibration[k];
      return `${k === "train" ? "training" : "inference"}: block compute ${
        formatFigure(c.computeMs)
      } ms, ` +
        `unshaped transfer ${formatFigure(c.fixedMs)} ms, ${
          formatFigure(c.bytes / 1e6)
        } MB in ${c.calls} all-to-alls, so communication is at least ` +
        `${formatFigure(unshapedShare(c))} of the block on any link`;
    }).join("; ") + "); each scenario's bandwidth is set, separately for training and for " +
    "inference, so that communication is the scenario's share of the serial top-2 MoE block " +
    "(its all-to-alls only, each taken as the group's exchange: from the last rank's issue " +
    "to the last rank's completion, as the step waits for all of it); the interleaved " +
    "run of every variant is repeated on a recalibrated link (interpolated between earlier " +
    "runs once they bracket the target, else along their slope) " +
    `while its own top-2 share misses the target by more than ±${SHARE_TOLERANCE} (at ` +
    `most ${SHARE_TRIES} runs; the closest is reported, with the share measured in it). ` +
    "A kind of step whose share still misses is marked off target (`on_target: 0` in its " +
    "rows): its speed-ups are shown but not compared with the paper's, and the headline " +
    "table leaves it out. " +
    "Per rank, communication is counted as transfer: from the moment the last rank issued an all-to-all " +
    "to the moment this rank completed it (a wait for the slower rank to issue is skew, " +
    "not communication; compute after this rank's own completion hides nothing). " +
    "The dense-gradient all-reduce is bucketed per block and issued during the backward (DDP " +
    "style); it runs over a second, unshaped group of the same ranks, because this miniature " +
    "has far more dense parameters per routed token than the paper's models (see " +
    '"All-reduce on the scenario\'s link" below for the same steps with it on the link). ' +
    "Variants interleaved step by step, every step starting from a barrier (so a rank's lag " +
    "at the end of one variant's step is not waited out in the next variant's); step time = " +
    "the slowest rank's, median over " +
    `${res.sizes.measured} steps after ${res.sizes.warmup} warm-up steps; the other figures ` +
    "are medians over those steps and both ranks. Step = whole model step " +
    "(training: forward, backward, gradient all-reduce; inference: forward only). " +
    "Speed-up = top-2 step time / variant step time. Bound = top-2 step time / (variant step " +
    "time with its MoE block at max(compute, communication)). Hidden = 1 - exposed / total " +
    "communication of the MoE block, exposed being the compute thread's waits while an " +
    "all-to-all was in flight; a wait that goes on after the all-to-all completed, until the " +
    "comm thread's result reaches the compute thread, is hand-off (`handoff_ms` rows, and in " +
    "the step time), not communication.",
    "",
  ];
  const kindName = (k: StepKind) => k === "train" ? "training" : "inference";
  /** What the report says of the kinds of step measured off the scenario's share. */
  const offTarget = (scenario: string) =>
    (["train", "infer"] as const).flatMap((k) => {
      const c = res.shares[scenario][k];
      if (c.onTarget) return [];
      const why = c.outOfReach
        ? "out of reach: the fastest link still gave more, as the unshaped transfer is at " +
          `least ${formatFigure(unshapedShare(res.calibration[k]))} of the block here`
        : `the closest of ${c.runs} runs`;
      return [
        ` **${kindName(k)[0].toUpperCase()}${kindName(k).slice(1)} off target**: top-2 share ` +
        `${formatFigure(c.measured)} against ${c.target} (${why}); its speed-ups below are ` +
        "not the scenario's and are not compared with the paper's.",
      ];
    }).join("");
  md.push(
    "## Headline: ScMoE Pos-2 over top-2, where the share held",
    "",
    "Speed-ups of the step over top-2 (medians), only for the kinds of step measured within " +
      `±${SHARE_TOLERANCE} of the scenario's top-2 communication share; hidden = the share of ` +
      "Pos-2's all-to-all transfer time that overlapped compute; bound = the speed-up with " +
      "its MoE block at max(compute, communication).",
    "",
    ...headlineLines(
      res.rows,
      Object.keys(SCENARIOS),
      Object.fromEntries(
        Object.entries(SCENARIOS).map(([s, spec]) => [s, spec.paper["scmoe-pos2"]]),
      ),
    ),
  );
  for (const [scenario, spec] of Object.entries(SCENARIOS)) {
    const on = res.shares[scenario];
    const paper = (v: string, i: number) => {
      const p = spec.paper[v]?.[i];
      if (p === undefined) return "–";
      return on[i === 0 ? "train" : "infer"].onTarget
        ? p.toFixed(2)
        : `(${p.toFixed(2)}: off target)`;
    };
    md.push(
      `## ${scenario} (paper: ${spec.setting}, communication ~${spec.share * 100}%)`,
      "",
      `Links ${formatFigure(value(`${scenario}/link`, "bandwidth"))} MB/s (training) and ` +
        `${
          formatFigure(value(`${scenario}/link`, "infer_bandwidth"))
        } MB/s (inference); measured top-2 ` +
        `communication share ${
          formatFigure(value(`${scenario}/top2`, "comm_share"))
        } in training and ` +
        `${
          formatFigure(value(`${scenario}/top2`, "infer_comm_share"))
        } in inference (target ${spec.share}).${offTarget(scenario)}`,
      "",
      ...table(
        [
          "variant",
          "train ms",
          "infer ms",
          "train speed-up",
          "paper",
          "bound",
          "infer speed-up",
          "paper",
          "bound",
          "hidden (train)",
          "hidden (infer)",
        ],
        SCENARIO_VARIANTS.map(([v]) => {
          const c = `${scenario}/${v}`;
          return [
            v,
            formatFigure(value(c, "train_step_ms")),
            formatFigure(value(c, "infer_step_ms")),
            formatFigure(value(c, "train_speedup")),
            paper(v, 0),
            formatFigure(value(c, "train_speedup_bound")),
            formatFigure(value(c, "infer_speedup")),
            paper(v, 1),
            formatFigure(value(c, "infer_speedup_bound")),
            formatFigure(value(c, "hidden_fraction")),
            formatFigure(value(c, "infer_hidden_fraction")),
          ];
        }),
      ),
      "",
      ...speedupSources(value, scenario),
    );
    const target = TARGETS[scenario];
    if (target) {
      const c = `${scenario}/scmoe-pos2`;
      const got = [
        value(c, "train_speedup"),
        value(c, "infer_speedup"),
        value(c, "hidden_fraction"),
      ];
      const names = ["training speed-up", "inference speed-up", "hidden fraction (train)"];
      // Off the scenario's share, a figure is not compared with the paper's.
      const kinds: StepKind[] = ["train", "infer", "train"];
      const compared = target.map((t, i) => on[kinds[i]].onTarget ? t : NaN);
      md.push(
        `Targets for ScMoE Pos-2 (from the paper's figures on ${spec.setting}): ` +
          names.map((n, i) =>
            `${n} ${formatFigure(got[i])} vs ${target[i]} ` +
            (Number.isNaN(compared[i])
              ? "(not compared: off target)"
              : got[i] >= target[i]
              ? "(met)"
              : `(short by ${formatFigure(target[i] - got[i])})`)
          ).join("; ") + ".",
        "",
        ...whyShort(value, scenario, compared.slice(0, 2)),
      );
    }
    md.push(
      "All-reduce on the scenario's link (the same training steps, the bucketed dense-gradient " +
        "all-reduce sharing the link with the all-to-alls):",
      "",
      ...table(
        ["variant", "train ms", "speed-up", "all-reduce wait ms", "all-reduce wait ms (own group)"],
        ON_LINK.map((v) => {
          const c = `${scenario}/${v}`;
          return [
            v,
            formatFigure(value(c, "train_step_ms_allreduce_on_link")),
            formatFigure(value(c, "train_speedup_allreduce_on_link")),
            formatFigure(value(c, "allreduce_wait_ms_on_link")),
            formatFigure(value(c, "allreduce_wait_ms")),
          ];
        }),
      ),
      "",
    );
    await Deno.writeTextFile(`${dir}speedup_${scenario}.svg`, speedupChart(scenario, value));
    await Deno.writeTextFile(
      `${dir}timeline_${scenario}.json`,
      JSON.stringify(chromeTrace(res.traced[scenario])),
    );
    await Deno.writeTextFile(`${dir}timeline_${scenario}.svg`, timelineSvg(res.traced[scenario]));
    md.push(
      `![${scenario} speed-ups](speedup_${scenario}.svg)`,
      "",
      `Timeline of the median training step (by step time) of every variant, both ranks: ` +
        `[timeline_${scenario}.svg](timeline_${scenario}.svg) (Chrome trace: ` +
        `[timeline_${scenario}.json](timeline_${scenario}.json)).`,
      "",
    );
  }
  md.push("## Quality", "");
  if (values["skip-quality"]) {
    md.push(
      "Not run (`--skip-quality`): `deno task bench quality` runs it alone (the committed full " +
        "run: [bench/results/quality/report.md](../quality/report.md)).",
      "",
    );
  } else {
    const q = await qualityResult(quick, dir);
    if (typeof q === "string") {
      md.push(`Left out: ${q}.`, "");
    } else {
      md.push(
        ...qualityMarkdown(q, 3),
        "Its own report, with every run's figures: [quality/report.md](quality/report.md).",
        "",
      );
    }
  }
  await Deno.writeTextFile(
    `${dir}scenarios.jsonl`,
    res.rows.map((r) => JSON.stringify(r)).join("\n") + "\n",
  );
  md.push("Raw rows: [scenarios.jsonl](scenarios.jsonl).", "");
  await Deno.writeTextFile(`${dir}report.md`, md.join("\n"));
  console.error(`wrote ${dir}report.md`);
}
