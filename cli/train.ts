/**
 * `deno task train [flags]`: the library's {@linkcode train} with its
 * settings given as flags. With no flags it is the project's main job:
 * ScMoE Pos-2 (CG-1) on 2 local ranks, tiny preset, on the Brown corpus.
 * `deno task train --help` lists the flags.
 *
 * @module
 */
import { shutdown } from "../actors/mod.ts";
import { BACKENDS } from "../models/backend.ts";
import { VARIANTS } from "../models/config.ts";
import { type Cluster, COMBINERS, SIZES, type TrainConfig } from "../training/config.ts";
import type { DataSpec } from "../training/data_source.ts";
import { BROWN_CATEGORIES } from "../models/data.ts";
import { formatDuration, formatRate } from "../training/progress.ts";
import { train, type TrainOptions, type TrainSummary } from "../training/train.ts";
import { type Command, parseCommand, usage, UsageError } from "./flags.ts";
import { runCli } from "./run.ts";

/** The flags of `deno task train`, by the {@linkcode TrainConfig} key each sets. */
const FLAGS = {
  variant: { flag: "variant", help: `model variant: ${VARIANTS.join("|")} (default scmoe)` },
  pos: { flag: "pos", help: "ScMoE shortcut position: 1|2|3 (default 2; scmoe only)" },
  combiner: {
    flag: "combiner",
    help: `ScMoE combiner: ${COMBINERS.join("|")} (default cg1; scmoe only)`,
  },
  ranks: {
    flag: "ranks",
    help: "rank actors, a positive integer dividing --experts and --batch (default 2)",
  },
  cluster: { flag: "cluster", help: "local|nats|nats://host:port (default local)" },
  backend: { flag: "backend", help: `tfjs backend: ${BACKENDS.join("|")} (default wasm)` },
  allowSoftwareWebgpu: {
    flag: "allow-software-webgpu",
    help: "with --backend webgpu: run on a software adapter (no GPU), slowly",
  },
  size: { flag: "size", help: `model size: ${Object.keys(SIZES).join("|")} (default tiny)` },
  data: { flag: "data", help: "brown, or the path of a UTF-8 text file (default brown)" },
  steps: { flag: "steps", help: "training steps, a positive integer (default from --size)" },
  batch: {
    flag: "batch",
    help: "global batch in sequences, a positive integer (default from --size)",
  },
  seq: { flag: "seq", help: "sequence length, a positive integer (default from --size)" },
  lr: { flag: "lr", help: "peak learning rate, a positive number (default from --size)" },
  seed: { flag: "seed", help: "seed, a non-negative integer (default 1)" },
  out: { flag: "out", help: "output directory (default runs/<variant>-<UTC time>)" },
  resume: {
    flag: "resume",
    help: "continue from the latest valid checkpoint in --out (needs --out)",
  },
  ckptEvery: {
    flag: "ckpt-every",
    help: "steps between checkpoints, a non-negative integer (default 0: at the end only)",
  },
  evalEvery: {
    flag: "eval-every",
    help: "steps between validation passes, a non-negative integer (0: at the end only)",
  },
  maxRestarts: {
    flag: "max-restarts",
    help: "recoveries from a dead rank or failed collective, a non-negative integer (default 2)",
  },
  collectiveTimeoutS: {
    flag: "collective-timeout",
    help: "seconds a collective may wait for its peers, a positive number (default 120)",
  },
  maxBadSteps: {
    flag: "max-bad-steps",
    help: "NaN/Inf steps in a row that stop the run, a positive integer (default 5)",
  },
  traceSteps: {
    flag: "trace-steps",
    help: "steps traced into DIR/trace.json (Chrome trace, opens in Perfetto), e.g. 3,5",
  },
  experts: {
    flag: "experts",
    help: "experts per MoE layer, a positive integer (default from --size)",
  },
  capacityFactor: {
    flag: "capacity-factor",
    help: "expert capacity factor, a positive number (default 2)",
  },
  auxConvention: {
    flag: "aux-convention",
    help: "balancing losses: sum (each MoE layer weighted 0.01, the paper's) | mean (default sum)",
  },
  moeShare: {
    flag: "moe-share",
    help: "MoE blocks sharing one gate and expert set, dividing their number (default 1; " +
      "dgmoe with 2: DGMoE-Share)",
  },
  collapseSteps: {
    flag: "collapse-steps",
    help: "steps in a row without a token that flag an expert as collapsed (default 10)",
  },
} as const satisfies Partial<Record<keyof TrainConfig, { flag: string; help: string }>>;

/** `deno task train`'s command line: every setting's flag, `--json`, `--help`. */
export const TRAIN_COMMAND: Command = {
  name: "deno task train",
  summary: "Trains one MoE variant on N expert-parallel rank actors; writes metrics, " +
    "summary.json and checkpoints to --out.",
  flags: {
    ...Object.fromEntries(
      Object.values(FLAGS).map(({ flag, help }) => [
        flag,
        { help, boolean: flag === "resume" || flag === "allow-software-webgpu", arg: "X" },
      ]),
    ),
    heldout: {
      arg: "LETTERS",
      help: "--data brown: Brown categories held out whole as a held-out text, e.g. h,r " +
        "(government documents, humor); reports its loss beside validation",
    },
    "split-seed": {
      arg: "N",
      help: "--data brown: seed of the train/validation split (default --seed)",
    },
    json: { boolean: true, help: "print the final result as JSON" },
  },
  epilog: "Add --debug to show the stack trace of an expected failure.",
};

/** Names a setting by its flag, for messages. */
export function flagLabel(key: keyof TrainConfig): string {
  const entry = (FLAGS as Record<string, { flag: string }>)[key];
  return entry ? `--${entry.flag}` : key;
}

/** A parsed `train` command line: the settings it gives, and the CLI's own switches. */
export interface TrainArgs {
  /** The settings given (the rest come from the size preset). */
  settings: Partial<TrainConfig>;
  /** `--json`: print the summary as JSON. */
  json: boolean;
  /** `--help`: print the usage and nothing else. */
  help: boolean;
}

/**
 * Reads a `train` command line into settings. Values are converted and
 * range-checked here; the cross-setting rules are `resolveTrainConfig`'s.
 *
 * @throws {UsageError} one line naming the flag and what it accepts.
 */
export function parseTrainArgs(args: readonly string[]): TrainArgs {
  const f = parseCommand(TRAIN_COMMAND, args);
  const settings: Partial<TrainConfig> = {};
  const int = (key: keyof TrainConfig, min: number) => {
    const flag = flagLabel(key).slice(2);
    if (f.has(flag)) (settings as Record<string, number>)[key] = f.integer(flag, 0, min);
  };
  const num = (key: keyof TrainConfig) => {
    const flag = flagLabel(key).slice(2);
    if (f.has(flag)) (settings as Record<string, number>)[key] = f.number(flag, 0);
  };
  const text = (key: keyof TrainConfig) => {
    const value = f.string(flagLabel(key).slice(2));
    if (value !== undefined) (settings as Record<string, string>)[key] = value;
  };
  for (const key of ["variant", "combiner", "backend", "size", "out"] as const) text(key);
  for (const key of ["auxConvention"] as const) text(key);
  for (
    const key of [
      "ranks",
      "steps",
      "batch",
      "seq",
      "experts",
      "maxBadSteps",
      "moeShare",
      "collapseSteps",
    ] as const
  ) {
    int(key, 1);
  }
  for (const key of ["seed", "ckptEvery", "evalEvery", "maxRestarts"] as const) int(key, 0);
  for (const key of ["lr", "collectiveTimeoutS", "capacityFactor"] as const) num(key);
  if (f.has("pos")) settings.pos = Number(f.choice("pos", ["1", "2", "3"], "2")) as 1 | 2 | 3;
  if (f.has("cluster")) settings.cluster = f.string("cluster") as Cluster;
  if (f.has("resume")) settings.resume = true;
  if (f.has("allow-software-webgpu")) settings.allowSoftwareWebgpu = true;
  if (f.has("data")) settings.data = dataSpec(f.required("data"));
  if (f.has("heldout") || f.has("split-seed")) {
    const brown = settings.data ?? { kind: "brown" };
    if (brown.kind !== "brown") {
      throw new UsageError(
        `--${f.has("heldout") ? "heldout" : "split-seed"} applies only to --data brown`,
      );
    }
    if (f.has("heldout")) {
      const letters = f.string("heldout")!.split(",").map((c) => c.trim().toLowerCase());
      const known = Object.keys(BROWN_CATEGORIES);
      if (!letters.every((c) => known.includes(c)) || letters.length >= known.length) {
        throw new UsageError(
          `--heldout must be Brown category letters separated by commas, not all of them ` +
            `(${known.join(",")}; got ${JSON.stringify(f.string("heldout"))})`,
        );
      }
      brown.heldoutCategories = letters;
    }
    if (f.has("split-seed")) brown.splitSeed = f.integer("split-seed", 0, 0);
    settings.data = brown;
  }
  if (f.has("trace-steps")) settings.traceSteps = stepList(f.string("trace-steps")!);
  return { settings, json: f.has("json"), help: f.help };
}

/** `brown` or a text file's path. */
function dataSpec(text: string): DataSpec {
  return text === "brown" ? { kind: "brown" } : { kind: "text", path: text };
}

/** Comma-separated positive integers (1-based steps). */
function stepList(text: string): number[] {
  const steps = text.split(",").map((s) => s.trim());
  if (!steps.every((s) => /^[1-9][0-9]*$/.test(s))) {
    throw new UsageError(
      `--trace-steps must be steps as positive integers separated by commas (got ${
        JSON.stringify(text)
      })`,
    );
  }
  return steps.map(Number);
}

/**
 * Trains on the settings of a `train` command line, naming settings by their
 * flags in messages: what the CLI does, without its printing.
 *
 * @throws {UsageError} for a bad command line, as {@linkcode parseTrainArgs}.
 */
export function trainWithArgs(
  args: readonly string[],
  options: TrainOptions = {},
): Promise<TrainSummary> {
  return train(parseTrainArgs(args).settings, { label: flagLabel, ...options });
}

/** Prints a finished run the way the CLI always has: one line each for loss, overlap, outputs. */
function printSummary(summary: TrainSummary): void {
  console.log(
    `validation loss ${summary.valLoss.toFixed(4)}, perplexity ${summary.valPpl.toFixed(2)} ` +
      `after ${summary.steps} steps (${formatDuration(summary.wallS)}, ` +
      `${summary.stepMs.toFixed(0)} ms/step, ${formatRate(summary.tokensPerS)} tok/s)`,
  );
  if (summary.overlap) {
    console.log(
      `MoE communication hidden ${summary.overlap.hiddenFraction.toFixed(2)}, ` +
        `eta ${summary.overlap.eta.toFixed(2)}, results handed to the compute thread ` +
        `${summary.overlap.handoffMs.toFixed(1)} ms after arrival per step (medians over steps)`,
    );
  }
  console.log(
    `outputs: ${summary.out}/metrics.jsonl, ${summary.out}/summary.json` +
      (summary.checkpoint ? `, checkpoint ${summary.checkpoint}` : "") +
      (summary.trace ? `, trace ${summary.trace}` : ""),
  );
}

/** The CLI: returns the exit code; expected failures are thrown for {@linkcode runCli}. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseTrainArgs(args);
  if (parsed.help) {
    console.log(usage(TRAIN_COMMAND));
    return 0;
  }
  const summary = await train(parsed.settings, { label: flagLabel });
  if (parsed.json) console.log(JSON.stringify(summary));
  else printSummary(summary);
  return 0;
}

if (import.meta.main) await runCli(main, { onInterrupt: shutdown });
