/**
 * The flags of `deno task train`, parsed strictly with `node:util` `parseArgs`
 * into a complete, checked {@linkcode TrainFlags}. Any mistake throws a
 * {@linkcode UsageError} whose message is one line naming the flag and what it
 * allows; the CLI prints it and exits with code 2 before writing anything.
 *
 * ```ts
 * import { parseTrainFlags, UsageError } from "./config_flags.ts";
 * try {
 *   const flags = parseTrainFlags(Deno.args);
 *   console.log(flags.variant, flags.ranks, flags.dModel);
 * } catch (e) {
 *   if (!(e instanceof UsageError)) throw e;
 *   console.error(`error: ${e.message}`);
 *   Deno.exit(2);
 * }
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BackendName, BACKENDS } from "./backend.ts";
import {
  type Combiner,
  type ModelConfig,
  resolveConfig,
  type Variant,
  VARIANTS,
} from "./config.ts";

/** A bad command line; the message is one line. */
export class UsageError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** ScMoE combiners. */
export const COMBINERS: readonly Combiner[] = ["cg1", "add", "cg2"];
/** Where ranks run: Workers in this process, processes on a private NATS server, or a given NATS server. */
export type Cluster = "local" | "nats" | `nats://${string}`;

/** The shape of a model and the run defaults that suit it. */
export interface SizePreset {
  /** Width of the residual stream. */
  dModel: number;
  /** Number of transformer blocks. */
  layers: number;
  /** Attention heads (divides `dModel`). */
  heads: number;
  /** Experts per MoE layer (global). */
  experts: number;
  /** Sequence length T. */
  seq: number;
  /** Global batch (sequences per step, all ranks together). */
  batch: number;
  /** Training steps. */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Steps between validation passes (0: only at the end). */
  evalEvery: number;
}

/**
 * Model sizes. `tiny` is the default run (ScMoE Pos-2 on 2 local ranks) and is
 * sized for a 2-core CPU: 0.35 M parameters per rank (dense replica + 2 of 4
 * experts per MoE layer), 1024 tokens a step, 120 steps: 80 s measured with
 * startup and validation on 2 busy shared cores (0.6-0.9 s a step, so at most
 * about 2 minutes), inside the 3-minute budget. `small` and `base` are for bigger machines.
 */
export const SIZES: Readonly<Record<"tiny" | "small" | "base", Readonly<SizePreset>>> = {
  tiny: {
    dModel: 64,
    layers: 4,
    heads: 4,
    experts: 4,
    seq: 64,
    batch: 16,
    steps: 120,
    lr: 3e-3,
    evalEvery: 60,
  },
  small: {
    dModel: 128,
    layers: 6,
    heads: 4,
    experts: 8,
    seq: 128,
    batch: 16,
    steps: 1000,
    lr: 1e-3,
    evalEvery: 250,
  },
  base: {
    dModel: 256,
    layers: 8,
    heads: 8,
    experts: 8,
    seq: 256,
    batch: 32,
    steps: 5000,
    lr: 6e-4,
    evalEvery: 500,
  },
};
/** A model size name. */
export type Size = keyof typeof SIZES;

/** A parsed and checked train command line: the size preset merged with explicit flags. */
export interface TrainFlags extends SizePreset {
  /** Model variant (`--variant`, default `scmoe`). */
  variant: Variant;
  /** ScMoE shortcut position (`--pos`, default 2). */
  pos: 1 | 2 | 3;
  /** ScMoE combiner (`--combiner`, default `cg1`). */
  combiner: Combiner;
  /** Number of rank actors (`--ranks`, default 2). */
  ranks: number;
  /** Where ranks run (`--cluster`, default `local`). */
  cluster: Cluster;
  /** tfjs backend (`--backend`, default `wasm`). */
  backend: BackendName;
  /** webgpu: run on a software adapter when there is no GPU (`--allow-software-webgpu`). */
  allowSoftwareWebgpu: boolean;
  /** Size preset (`--size`, default `tiny`). */
  size: Size;
  /** Seed of data order, initialization and gate noise (`--seed`, default 1). */
  seed: number;
  /** Capacity factor of the gates in training (`--capacity-factor`, default the model's, 2). */
  capacityFactor: number;
  /** Output directory (`--out`, default `runs/<variant>-<UTC time>`, e.g. `runs/scmoe-pos2-20250101T120000`). */
  out: string;
  /** Steps between checkpoints (`--ckpt-every`, default 0: at the end only). */
  ckptEvery: number;
  /**
   * Recoveries allowed after a rank dies or its collectives fail (`--max-restarts`,
   * default 2): each restarts the lost ranks and reloads the last checkpoint.
   */
  maxRestarts: number;
  /** Deadline of every collective in seconds (`--collective-timeout`, default 120). */
  collectiveTimeoutS: number;
  /** Non-finite (NaN or infinite) steps in a row that stop the run (`--max-bad-steps`, default 5). */
  maxBadSteps: number;
  /** 1-based steps whose timed ops go to `out/trace.json` (`--trace-steps 2,5`, default none). */
  traceSteps: number[];
  /** Continue from the latest valid checkpoint in `out` (`--resume`). */
  resume: boolean;
  /** Print the final result as JSON (`--json`). */
  json: boolean;
  /** Print usage and exit (`--help`). */
  help: boolean;
}

const DEFAULT_CF = resolveConfig().capacityFactor;
const FLAG_HELP = {
  variant: `model variant: ${VARIANTS.join("|")} (default scmoe)`,
  pos: "ScMoE shortcut position: 1|2|3 (default 2; scmoe only)",
  combiner: `ScMoE combiner: ${COMBINERS.join("|")} (default cg1; scmoe only)`,
  ranks: "rank actors, a positive integer dividing --experts and --batch (default 2)",
  cluster: "local|nats|nats://host:port (default local)",
  backend: `tfjs backend: ${BACKENDS.join("|")} (default wasm)`,
  "allow-software-webgpu": "with --backend webgpu: run on a software adapter (no GPU), slowly",
  size: `model size: ${Object.keys(SIZES).join("|")} (default tiny)`,
  steps: "training steps, a positive integer (default from --size)",
  batch: "global batch in sequences, a positive integer (default from --size)",
  seq: "sequence length, a positive integer (default from --size)",
  lr: "peak learning rate, a positive number (default from --size)",
  seed: "seed, a non-negative integer (default 1)",
  out: "output directory (default runs/<variant>-<UTC time>)",
  resume: "continue from the latest valid checkpoint in --out (needs --out)",
  "ckpt-every": "steps between checkpoints, a non-negative integer (default 0: at the end only)",
  "eval-every": "steps between validation passes, a non-negative integer (0: at the end only)",
  "max-restarts":
    "recoveries from a dead rank or failed collective, a non-negative integer (default 2)",
  "collective-timeout":
    "seconds a collective may wait for its peers, a positive number (default 120)",
  "max-bad-steps": "NaN/Inf steps in a row that stop the run, a positive integer (default 5)",
  "trace-steps":
    "steps traced into DIR/trace.json (Chrome trace, opens in Perfetto), e.g. 3,5 (default none)",
  experts: "experts per MoE layer, a positive integer (default from --size)",
  "capacity-factor": `expert capacity factor, a positive number (default ${DEFAULT_CF})`,
  json: "print the final result as JSON",
  help: "print this help",
} as const;
type Flag = keyof typeof FLAG_HELP;
const BOOLEAN_FLAGS = new Set<Flag>(["allow-software-webgpu", "resume", "json", "help"]);

/** The usage text of `deno task train`, one line per flag. */
export function trainUsage(): string {
  const rows = Object.entries(FLAG_HELP).map(([flag, help]) =>
    `  --${BOOLEAN_FLAGS.has(flag as Flag) ? flag : `${flag} X`}`.padEnd(23) + " " + help
  );
  return ["usage: deno task train [flags]", ...rows].join("\n");
}

/**
 * Parses `args` (such as `Deno.args`) into {@linkcode TrainFlags}; `now`
 * stamps the default output directory.
 *
 * @throws {UsageError} one line naming the flag and the allowed values.
 */
export function parseTrainFlags(args: string[], now: Date = new Date()): TrainFlags {
  const options = Object.fromEntries(
    Object.keys(FLAG_HELP).map((f) => [
      f,
      { type: BOOLEAN_FLAGS.has(f as Flag) ? "boolean" : "string", multiple: true },
    ]),
  ) as Record<Flag, { type: "string" | "boolean"; multiple: true }>;
  let values: Record<string, (string | boolean)[] | undefined>;
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw usageFromParseError(e);
  }
  const one = (flag: Flag): string | undefined => {
    const given = values[flag];
    if (given === undefined) return undefined;
    if (given.length > 1) {
      throw new UsageError(`--${flag} given ${given.length} times; give it once`);
    }
    return String(given[0]);
  };
  const size = choice(one("size") ?? "tiny", "size", Object.keys(SIZES) as Size[]);
  const preset = SIZES[size];
  const variant = choice(one("variant") ?? "scmoe", "variant", VARIANTS);
  const posText = one("pos");
  const combinerText = one("combiner");
  if (variant !== "scmoe" && (posText !== undefined || combinerText !== undefined)) {
    const flag = posText !== undefined ? "pos" : "combiner";
    throw new UsageError(`--${flag} applies only to --variant scmoe (got --variant ${variant})`);
  }
  const flags: TrainFlags = {
    ...preset,
    variant,
    pos: Number(choice(posText ?? "2", "pos", ["1", "2", "3"])) as 1 | 2 | 3,
    combiner: choice(combinerText ?? "cg1", "combiner", COMBINERS),
    ranks: integer(one("ranks"), "ranks", 2, 1),
    cluster: cluster(one("cluster") ?? "local"),
    backend: choice(one("backend") ?? "wasm", "backend", BACKENDS),
    allowSoftwareWebgpu: values["allow-software-webgpu"] !== undefined,
    size,
    steps: integer(one("steps"), "steps", preset.steps, 1),
    batch: integer(one("batch"), "batch", preset.batch, 1),
    seq: integer(one("seq"), "seq", preset.seq, 1),
    lr: positive(one("lr"), "lr", preset.lr),
    seed: integer(one("seed"), "seed", 1, 0),
    evalEvery: integer(one("eval-every"), "eval-every", preset.evalEvery, 0),
    experts: integer(one("experts"), "experts", preset.experts, 1),
    capacityFactor: positive(one("capacity-factor"), "capacity-factor", DEFAULT_CF),
    out: one("out") ??
      `runs/${variant === "scmoe" ? `scmoe-pos${posText ?? 2}` : variant}-${stamp(now)}`,
    ckptEvery: integer(one("ckpt-every"), "ckpt-every", 0, 0),
    maxRestarts: integer(one("max-restarts"), "max-restarts", 2, 0),
    collectiveTimeoutS: positive(one("collective-timeout"), "collective-timeout", 120),
    maxBadSteps: integer(one("max-bad-steps"), "max-bad-steps", 5, 1),
    traceSteps: stepList(one("trace-steps"), "trace-steps"),
    resume: values.resume !== undefined,
    json: values.json !== undefined,
    help: values.help !== undefined,
  };
  if (flags.out === "") throw new UsageError("--out must name a directory");
  if (flags.resume && values.out === undefined) {
    throw new UsageError("--resume needs --out DIR, the run to continue");
  }
  if (flags.batch % flags.ranks !== 0) {
    throw new UsageError(
      `--batch ${flags.batch} must be a multiple of --ranks ${flags.ranks} (each rank takes batch/ranks)`,
    );
  }
  if (flags.variant !== "dense" && flags.experts % flags.ranks !== 0) {
    throw new UsageError(
      `--experts ${flags.experts} must be a multiple of --ranks ${flags.ranks} (each rank holds experts/ranks)`,
    );
  }
  const late = flags.traceSteps.find((s) => s > flags.steps);
  if (late !== undefined) {
    throw new UsageError(`--trace-steps ${late} is past --steps ${flags.steps}`);
  }
  if (flags.variant !== "dense" && flags.experts < 2) {
    throw new UsageError(
      `--experts must be at least 2 for --variant ${flags.variant} (got ${flags.experts})`,
    );
  }
  return flags;
}

/** `2025-01-02T03:04:05.678Z` → `20250102T030405`. */
function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]|\.\d+Z$/g, "");
}

function choice<T extends string>(text: string, flag: Flag, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw new UsageError(
    `--${flag} must be one of ${allowed.join(", ")} (got ${JSON.stringify(text)})`,
  );
}

function integer(text: string | undefined, flag: Flag, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    const kind = min > 0 ? "a positive integer" : "a non-negative integer";
    throw new UsageError(`--${flag} must be ${kind} (got ${JSON.stringify(text)})`);
  }
  return n;
}

/** Comma-separated positive integers (1-based steps), none when absent; in order, once each. */
function stepList(text: string | undefined, flag: Flag): number[] {
  if (text === undefined) return [];
  const steps = text.split(",").map((s) => s.trim());
  if (!steps.every((s) => /^[1-9][0-9]*$/.test(s))) {
    throw new UsageError(
      `--${flag} must be steps as positive integers separated by commas (got ${
        JSON.stringify(text)
      })`,
    );
  }
  return [...new Set(steps.map(Number))].sort((a, b) => a - b);
}

function positive(text: string | undefined, flag: Flag, fallback: number): number {
  if (text === undefined) return fallback;
  const n = text.trim() === "" ? NaN : Number(text);
  if (!(Number.isFinite(n) && n > 0)) {
    throw new UsageError(`--${flag} must be a positive number (got ${JSON.stringify(text)})`);
  }
  return n;
}

function cluster(text: string): Cluster {
  if (text === "local" || text === "nats") return text;
  const allowed = "local, nats, nats://host:port";
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // reported below
  }
  if (
    url === null || url.protocol !== "nats:" || url.hostname === "" || url.username !== "" ||
    url.password !== "" || url.search !== "" || url.hash !== "" || !/^\/?$/.test(url.pathname)
  ) {
    throw new UsageError(`--cluster must be one of ${allowed} (got ${JSON.stringify(text)})`);
  }
  return `nats://${url.host}`;
}

/** Turns `parseArgs`'s errors into one-line usage errors. */
function usageFromParseError(e: unknown): unknown {
  const code = (e as { code?: string }).code;
  const message = e instanceof Error ? e.message : "";
  const flag = /Option '(-[-\w]+)/.exec(message)?.[1] ?? /'(-[^']*)'/.exec(message)?.[1];
  const all = Object.keys(FLAG_HELP).map((f) => `--${f}`).join(", ");
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return new UsageError(`unknown flag ${flag} (flags: ${all})`);
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL": {
      const arg = /argument '([^']*)'/.exec(message)?.[1];
      return new UsageError(
        `unexpected argument ${JSON.stringify(arg)}: flags start with -- (flags: ${all})`,
      );
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const name = flag?.replace(/^--/, "") as Flag;
      return name in FLAG_HELP && BOOLEAN_FLAGS.has(name)
        ? new UsageError(`--${name} takes no value`)
        : new UsageError(`--${name} needs a value: ${FLAG_HELP[name] ?? ""}`);
    }
    default:
      return e;
  }
}

/**
 * The model a parsed command line asks for: the size preset's shape, the
 * variant with its position and combiner, the capacity factor.
 */
export function modelConfigOf(flags: TrainFlags): ModelConfig {
  return resolveConfig({
    nEmbd: flags.dModel,
    nLayer: flags.layers,
    nHead: flags.heads,
    nExperts: flags.experts,
    blockSize: flags.seq,
    variant: flags.variant,
    pos: flags.pos,
    combiner: flags.combiner,
    capacityFactor: flags.capacityFactor,
  });
}
