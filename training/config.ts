/**
 * The settings of one training run: a size preset merged with what the
 * caller gives, checked as a whole by {@linkcode resolveTrainConfig}. Any
 * mistake throws a {@linkcode ConfigError} whose message is one line naming
 * the setting and what it allows (the `train` CLI names them as flags).
 *
 * @example
 * ```ts
 * import { resolveTrainConfig } from "./config.ts";
 * const config = resolveTrainConfig({ variant: "top2", steps: 40, out: "runs/top2" });
 * console.log(config.dModel, config.batch, config.ranks); // 64 16 2 (the tiny preset)
 * ```
 *
 * @module
 */
import { type BackendName, BACKENDS } from "../models/backend.ts";
import {
  type Combiner,
  type ModelConfig,
  resolveConfig,
  type Variant,
  VARIANTS,
} from "../models/config.ts";
import type { DataSpec } from "./data_source.ts";
import { AUX_CONVENTIONS, type AuxConvention } from "../models/steps.ts";

/** A bad training setting; the message is one line naming it. */
export class ConfigError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
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

/** The complete, checked settings of a training run: the size preset merged with the caller's. */
export interface TrainConfig extends SizePreset {
  /** Model variant (default `scmoe`). */
  variant: Variant;
  /** ScMoE shortcut position (default 2). */
  pos: 1 | 2 | 3;
  /** ScMoE combiner (default `cg1`). */
  combiner: Combiner;
  /** Number of rank actors (default 2). */
  ranks: number;
  /** Where ranks run (default `local`). */
  cluster: Cluster;
  /** tfjs backend (default `wasm`). */
  backend: BackendName;
  /** With the `webgpu` backend: run on a software adapter when there is no GPU (default false). */
  allowSoftwareWebgpu: boolean;
  /** Size preset the shape and run defaults come from (default `tiny`). */
  size: Size;
  /** Seed of data order, initialization and gate noise (default 1). */
  seed: number;
  /** Capacity factor of the gates in training (default the model's, 2). */
  capacityFactor: number;
  /**
   * How the MoE layers' load-balancing losses enter the loss (default
   * `sum`: each layer weighted 0.01, the paper's reading; `mean`: their mean
   * weighted 0.01). See `AuxConvention` of `models/steps.ts`.
   */
  auxConvention: AuxConvention;
  /**
   * MoE blocks sharing one gate and expert set (default 1: none; 2 with
   * `dgmoe` is DGMoE-Share on the 4-block presets). Must divide the number of MoE blocks.
   */
  moeShare: number;
  /** Steps in a row without a token that make an expert collapsed (default 10). */
  collapseSteps: number;
  /** The text trained on (default the Brown corpus). */
  data: DataSpec;
  /** Output directory (default `runs/<variant>-<UTC time>`, e.g. `runs/scmoe-pos2-20250101T120000`). */
  out: string;
  /** Steps between checkpoints (default 0: at the end only). */
  ckptEvery: number;
  /**
   * Recoveries allowed after a rank dies or its collectives fail (default 2):
   * each restarts the lost ranks and reloads the last checkpoint.
   */
  maxRestarts: number;
  /** Deadline of every collective in seconds (default 120). */
  collectiveTimeoutS: number;
  /** Non-finite (NaN or infinite) steps in a row that stop the run (default 5). */
  maxBadSteps: number;
  /** 1-based steps whose timed ops go to `out/trace.json` (default none). */
  traceSteps: number[];
  /** Continue from the latest valid checkpoint in `out` (default false). */
  resume: boolean;
}

/** What a caller may set: any part of a {@linkcode TrainConfig}; the rest comes from the preset. */
export type TrainSettings = Partial<TrainConfig>;

/** How a setting is named in messages: `steps` for the library, `--steps` for the CLI. */
export type SettingLabel = (key: keyof TrainConfig) => string;

const asKey: SettingLabel = (key) => key;

/**
 * Fills `settings` from its size preset (`tiny` by default) and checks the
 * whole; `now` stamps the default output directory.
 *
 * @throws {ConfigError} one line naming the first bad setting and what it allows.
 */
export function resolveTrainConfig(
  settings: TrainSettings = {},
  options: { now?: Date; label?: SettingLabel } = {},
): TrainConfig {
  const label = options.label ?? asKey;
  const fail = (key: keyof TrainConfig, what: string): never => {
    throw new ConfigError(`${label(key)} must be ${what} (got ${JSON.stringify(settings[key])})`);
  };
  const oneOf = <T>(key: keyof TrainConfig, allowed: readonly T[], fallback: T): T => {
    const v = settings[key] ?? fallback;
    return allowed.includes(v as T) ? v as T : fail(key, `one of ${allowed.join(", ")}`);
  };
  const size = oneOf("size", Object.keys(SIZES) as Size[], "tiny");
  const preset = SIZES[size];
  const int = (key: keyof TrainConfig, fallback: number, min: number): number => {
    const v = settings[key] ?? fallback;
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= min) return v;
    return fail(key, min > 0 ? "a positive integer" : "a non-negative integer");
  };
  const positive = (key: keyof TrainConfig, fallback: number): number => {
    const v = settings[key] ?? fallback;
    return typeof v === "number" && Number.isFinite(v) && v > 0
      ? v
      : fail(key, "a positive number");
  };
  const variant = oneOf("variant", VARIANTS, "scmoe");
  if (variant !== "scmoe" && (settings.pos !== undefined || settings.combiner !== undefined)) {
    const key = settings.pos !== undefined ? "pos" : "combiner";
    throw new ConfigError(
      `${label(key)} applies only to ${label("variant")} scmoe (got ${
        label("variant")
      } ${variant})`,
    );
  }
  const pos = oneOf("pos", [1, 2, 3] as const, 2);
  const config: TrainConfig = {
    ...preset,
    variant,
    pos,
    combiner: oneOf("combiner", COMBINERS, "cg1"),
    ranks: int("ranks", 2, 1),
    cluster: checkCluster(settings.cluster ?? "local", label),
    backend: oneOf("backend", BACKENDS, "wasm"),
    allowSoftwareWebgpu: settings.allowSoftwareWebgpu ?? false,
    size,
    steps: int("steps", preset.steps, 1),
    batch: int("batch", preset.batch, 1),
    seq: int("seq", preset.seq, 1),
    lr: positive("lr", preset.lr),
    seed: int("seed", 1, 0),
    evalEvery: int("evalEvery", preset.evalEvery, 0),
    experts: int("experts", preset.experts, 1),
    dModel: int("dModel", preset.dModel, 1),
    layers: int("layers", preset.layers, 1),
    heads: int("heads", preset.heads, 1),
    capacityFactor: positive("capacityFactor", resolveConfig().capacityFactor),
    auxConvention: oneOf("auxConvention", AUX_CONVENTIONS, "sum"),
    moeShare: int("moeShare", 1, 1),
    collapseSteps: int("collapseSteps", 10, 1),
    data: settings.data ?? { kind: "brown" },
    out: settings.out ?? defaultOut(variant, pos, options.now ?? new Date()),
    ckptEvery: int("ckptEvery", 0, 0),
    maxRestarts: int("maxRestarts", 2, 0),
    collectiveTimeoutS: positive("collectiveTimeoutS", 120),
    maxBadSteps: int("maxBadSteps", 5, 1),
    traceSteps: checkSteps(settings.traceSteps ?? [], label),
    resume: settings.resume ?? false,
  };
  checkWhole(config, settings, label);
  return config;
}

/** The cross-setting rules: shares divide evenly, traced steps exist, MoE has experts. */
function checkWhole(config: TrainConfig, settings: TrainSettings, label: SettingLabel): void {
  const rule = (ok: boolean, message: string) => {
    if (!ok) throw new ConfigError(message);
  };
  rule(config.out !== "", `${label("out")} must name a directory`);
  rule(
    !config.resume || settings.out !== undefined,
    `${label("resume")} needs ${label("out")} DIR, the run to continue`,
  );
  rule(
    config.batch % config.ranks === 0,
    `${label("batch")} ${config.batch} must be a multiple of ${label("ranks")} ${config.ranks} ` +
      `(each rank takes batch/ranks)`,
  );
  rule(
    config.variant === "dense" || config.experts % config.ranks === 0,
    `${label("experts")} ${config.experts} must be a multiple of ${
      label("ranks")
    } ${config.ranks} ` +
      `(each rank holds experts/ranks)`,
  );
  const late = config.traceSteps.find((s) => s > config.steps);
  rule(
    late === undefined,
    `${label("traceSteps")} ${late} is past ${label("steps")} ${config.steps}`,
  );
  rule(
    config.variant === "dense" || config.experts >= 2,
    `${label("experts")} must be at least 2 for ${label("variant")} ${config.variant} ` +
      `(got ${config.experts})`,
  );
  const moeBlocks = config.variant === "dense" ? 0 : Math.floor(config.layers / 2);
  rule(
    config.moeShare === 1 || (moeBlocks > 0 && moeBlocks % config.moeShare === 0),
    `${label("moeShare")} ${config.moeShare} must divide the ${moeBlocks} MoE blocks ` +
      `of ${label("layers")} ${config.layers} (variant ${config.variant})`,
  );
  rule(
    config.dModel % config.heads === 0,
    `${label("heads")} ${config.heads} must divide ${label("dModel")} ${config.dModel}`,
  );
}

/** `runs/scmoe-pos2-20250102T030405` for a run started at 2025-01-02T03:04:05Z. */
function defaultOut(variant: Variant, pos: number, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]|\.\d+Z$/g, "");
  return `runs/${variant === "scmoe" ? `scmoe-pos${pos}` : variant}-${stamp}`;
}

/** Positive integer steps, in order, once each. */
function checkSteps(steps: unknown, label: SettingLabel): number[] {
  if (!Array.isArray(steps) || !steps.every((s) => Number.isSafeInteger(s) && s > 0)) {
    throw new ConfigError(
      `${label("traceSteps")} must be positive integer steps (got ${JSON.stringify(steps)})`,
    );
  }
  return [...new Set(steps as number[])].sort((a, b) => a - b);
}

/** `local`, `nats` or `nats://host[:port]` (no credentials, path or query in the URL). */
function checkCluster(text: string, label: SettingLabel): Cluster {
  if (text === "local" || text === "nats") return text;
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
    throw new ConfigError(
      `${label("cluster")} must be one of local, nats, nats://host:port (got ${
        JSON.stringify(text)
      })`,
    );
  }
  return `nats://${url.host}`;
}

/**
 * The model a run asks for: the preset's shape (or the caller's), the
 * variant with its position and combiner, the capacity factor.
 */
export function modelConfigOf(config: TrainConfig): ModelConfig {
  return resolveConfig({
    nEmbd: config.dModel,
    nLayer: config.layers,
    nHead: config.heads,
    nExperts: config.experts,
    blockSize: config.seq,
    variant: config.variant,
    pos: config.pos,
    combiner: config.combiner,
    capacityFactor: config.capacityFactor,
    auxConvention: config.auxConvention,
    moeShare: config.moeShare,
  });
}
