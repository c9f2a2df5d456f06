/**
 * The training loop: expert-parallel training of one model variant on N
 * rank actors, with a progress bar, `DIR/metrics.jsonl` (one line per step,
 * with the MoE blocks' overlap figures; the last line holds the final
 * evaluation), `DIR/summary.json`, a Chrome trace of the steps of
 * `traceSteps`, periodic and final validation, checkpoints, recovery from
 * lost ranks, and resuming. `deno task train` is this with its flags parsed.
 *
 * @example
 * ```ts ignore
 * import { train } from "../mod.ts";
 * const summary = await train({ variant: "scmoe", pos: 2, steps: 60, out: "runs/mine" });
 * console.log(summary.valLoss, summary.checkpoint);
 * ```
 *
 * @module
 */
import { ActorDiedError, init, type InitOptions, RemoteError, shutdown } from "../actors/mod.ts";
import { type CheckpointContents, checkpointName, loadLatestValid } from "../models/checkpoint.ts";
import { checkBackend } from "../models/backend.ts";
import type { ModelConfig } from "../models/config.ts";
import { overlapFields, type OverlapSummary, overlapSummary } from "../models/overlap_metrics.ts";
import type { TimedOp } from "../models/overlap_report.ts";
import { chromeTrace } from "../models/trace.ts";
import type { StepShape } from "../models/cost.ts";
import { gpt } from "../models/gpt.ts";
import { programFlops } from "../models/simulate.ts";
import {
  ConfigError,
  modelConfigOf,
  resolveTrainConfig,
  type TrainConfig,
  type TrainSettings,
} from "./config.ts";
import type { DataSpec } from "./data_source.ts";
import { MetricsWriter, ProgressBar } from "./progress.ts";
import { BusOutageError, RankGroup } from "./rank_group.ts";
import { codeVersion } from "./version.ts";
import type { GateStats } from "../models/gate.ts";
import {
  type Collapse,
  CollapseWatch,
  type GateHealth,
  gateHealth,
  idleExperts,
  meanLoadCv,
  type Spike,
  SpikeWatch,
} from "./health.ts";

/** Global validation batches in each evaluation (in corpus order, the same every time). */
export const VAL_BATCHES = 8;

/** What a finished run reports. */
export interface TrainSummary {
  /** Output directory. */
  out: string;
  /** Steps completed in all (counting those before a resume). */
  steps: number;
  /** Final validation loss (next-byte cross-entropy, nats). */
  valLoss: number;
  /**
   * Final loss on the held-out text (a Brown source with
   * `heldoutCategories`), the same number of batches as validation; null without one.
   */
  heldoutLoss: number | null;
  /** `exp(valLoss)`. */
  valPpl: number;
  /** Directory of the final checkpoint (null when checkpoints are off). */
  checkpoint: string | null;
  /** Seconds from start to end, startup and validation included. */
  wallS: number;
  /** Median milliseconds of a training step, at the driver. */
  stepMs: number;
  /** Global tokens per second over this invocation's steps. */
  tokensPerS: number;
  /** Recoveries from dead ranks or failed collectives, in order. */
  recoveries: Recovery[];
  /** Steps (1-based) skipped for a NaN or infinite loss or gradient. */
  skippedSteps: number[];
  /** Medians of the steps' MoE overlap (after the first step); null without MoE communication. */
  overlap: OverlapSummary | null;
  /** Each gate application's routing at the end of the run; null without MoE layers. */
  routing: RoutingSummary | null;
  /** Experts that got no token for `collapseSteps` steps in a row (also warned on stderr). */
  collapses: Collapse[];
  /** Steps whose gradient norm or loss jumped far above the recent steps' (also warned). */
  spikes: Spike[];
  /** The Chrome trace of `--trace-steps`, when asked for. */
  trace: string | null;
  /** Model FLOP utilisation of the training steps; null when not measured (no steps run). */
  mfu: ModelFlopUtilisation | null;
}

/**
 * Where a step's time goes, against the backend's matmul rate: the model's
 * FLOPs (its steps' cost estimates: the forward's matrix multiplies, times 3
 * for forward and backward) per second of the median step, per rank, over
 * the rate one rank measured for a plain matrix multiply on its backend.
 */
export interface ModelFlopUtilisation {
  /** Model FLOPs of one step on one rank. */
  modelFlopsPerStep: number;
  /** `modelFlopsPerStep` per second of the median step. */
  modelFlopsPerS: number;
  /** The backend's matmul rate, FLOP/s, measured by the ranks after training (their mean). */
  matmulFlopsPerS: number;
  /** `modelFlopsPerS / matmulFlopsPerS`. */
  mfu: number;
}

/** Each gate application's routing at the end of a run. */
export interface RoutingSummary {
  /**
   * In training (gate noise, training capacity), over the last quarter of
   * the steps: demand summed, CV of that sum, drops over assignments.
   */
  train: GateHealth[];
  /** In the final validation pass (no noise, evaluation capacity). */
  eval: GateHealth[];
}

/** One recovery: the lost ranks restarted, the group re-formed, the last checkpoint reloaded. */
export interface Recovery {
  /** The step (1-based) that failed. */
  step: number;
  /** What failed, one line. */
  reason: string;
  /** Epoch milliseconds when the driver saw the failure. */
  detectedAt: number;
  /** Epoch milliseconds when the ranks were back, at the checkpoint, ready to train. */
  recoveredAt: number;
  /** The step training went on from (that of the checkpoint reloaded; 0 without one). */
  resumedFrom: number;
  /** Steps completed before the failure and trained again: `step - 1 - resumedFrom`. */
  stepsRedone: number;
  /** Incarnation of each rank afterwards (above 0: restarted by the runtime). */
  incarnations: number[];
}

/** The run stopped on faults it may not survive (recovery budget spent, NaN steps in a row). */
export class TrainingStopped extends Error {
  /** Makes the error; the message is one line. */
  constructor(message: string) {
    super(message);
    this.name = "TrainingStopped";
  }
}

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** Write checkpoints (default true). */
  checkpoints?: boolean;
  /** Progress bar and messages (default true). */
  verbose?: boolean;
  /** Runtime options besides the cluster (credentials, heartbeat timeout). */
  init?: Omit<InitOptions, "cluster">;
  /** Called after each completed step (1-based), e.g. to observe or inject faults. */
  onStep?: (step: number, group: RankGroup) => void | Promise<void>;
  /** Test-only fault injection: 0-based steps whose gradient rank 0 poisons with NaN. */
  nanGradSteps?: number[];
  /** Agent id or host name to place each rank on, by rank (nats clusters; default: round-robin). */
  rankHosts?: readonly string[];
  /** How settings are named in messages (the CLI names them as flags; default their keys). */
  label?: (key: keyof TrainConfig) => string;
}

/**
 * Runs (or with `resume` continues) one training run: resolves `settings`
 * (see {@linkcode resolveTrainConfig}), starts the actor runtime and the
 * ranks, trains, validates, checkpoints, writes `summary.json`, and shuts
 * the runtime down whatever happens.
 *
 * @throws {ConfigError} before writing anything, for a bad setting or when
 *   `out` cannot be used (a fresh run into a directory holding one, a resume
 *   without a matching checkpoint).
 * @throws {TrainingStopped} when faults outlast the recovery budget.
 */
export async function train(
  settings: TrainSettings,
  options: TrainOptions = {},
): Promise<TrainSummary> {
  const { checkpoints = true, verbose = true } = options;
  const label = options.label ?? ((key: string) => key);
  const cfg = resolveTrainConfig(settings, { label: options.label });
  const t0 = performance.now();
  const say = verbose ? (line: string) => console.error(line) : () => {};
  const model = modelConfigOf(cfg);
  const config = { model, train: runSettings(cfg) };
  const resumed = cfg.resume ? await resumePoint(cfg, config, label) : null;
  if (!cfg.resume) await assertFresh(cfg.out, label);
  const start = resumed?.state.step ?? 0;
  const metricsPath = `${cfg.out}/metrics.jsonl`;
  // Opened once the ranks are up: a run that fails to start leaves no folder behind.
  let metrics!: MetricsWriter;

  // Ranks on this host (Workers, or processes of a private server) refuse a backend it lacks:
  // check here first, before any rank starts.
  if (!cfg.cluster.startsWith("nats://")) {
    await checkBackend(cfg.backend, { allowSoftwareAdapter: cfg.allowSoftwareWebgpu });
  }
  await init({ ...options.init, cluster: cfg.cluster });
  try {
    const { group, paramCounts } = await RankGroup.start(
      {
        model,
        seed: cfg.seed,
        backend: cfg.backend,
        allowSoftwareWebgpu: cfg.allowSoftwareWebgpu,
        data: { seq: cfg.seq, batch: cfg.batch, source: cfg.data },
        optimizer: { lr: cfg.lr, warmup: warmupSteps(cfg.steps), total: cfg.steps },
        nanGradSteps: options.nanGradSteps,
      },
      cfg.ranks,
      model,
      {
        maxRestarts: cfg.maxRestarts,
        collectiveTimeoutMs: cfg.collectiveTimeoutS * 1000,
        hosts: options.rankHosts,
      },
    );
    say(
      `${describe(cfg)}: ${cfg.ranks} ${cfg.cluster} ranks, ` +
        `${paramCounts.map((n) => (n / 1e6).toFixed(2)).join("+")} M parameters, ` +
        `${cfg.batch}x${cfg.seq} tokens a step, backend ${cfg.backend}`,
    );
    if (resumed) {
      await group.load(resumed);
      say(
        `resumed ${cfg.out}/${checkpointName(start)} (trained on ${resumed.state.ranks} ranks)`,
      );
    }
    await Deno.mkdir(cfg.out, { recursive: true });
    await keepMetricsUpTo(metricsPath, start);
    metrics = new MetricsWriter(metricsPath);
    const save = async (step: number) =>
      checkpoints
        ? await group.save(cfg.out, { step, seed: cfg.seed, ranks: cfg.ranks }, config)
        : null;
    const validate = async (split: "val" | "heldout" = "val") => {
      const [res] = await group.all((r) => r.evaluateSplit(VAL_BATCHES, split));
      return { loss: res.loss, gates: res.gates.map(gateHealth) };
    };
    const hasHeldout = cfg.data.kind === "brown" && (cfg.data.heldoutCategories?.length ?? 0) > 0;
    const collapses = new CollapseWatch({ steps: cfg.collapseSteps });
    const spikes = new SpikeWatch();
    /** The steps' gate statistics, for the routing summary (the last quarter is kept). */
    const stepGates: GateStats[][] = [];
    let finalEval: GateHealth[] = [];
    let heldoutLoss: number | null = null;
    const bar = verbose ? new ProgressBar({ total: cfg.steps }) : null;
    /** Re-forms the group at the last checkpoint (or the start); returns its step. */
    const recover = async (failed: number, reason: string): Promise<Recovery> => {
      const detectedAt = Date.now();
      bar?.done();
      say(`warning: step ${failed}: ${reason}; restarting ranks from the last checkpoint`);
      const incarnations = await group.regroup().catch((e) => {
        throw new TrainingStopped(
          `step ${failed}: ${reason}; the ranks could not be re-formed: ${
            (e as Error).message.split("\n")[0]
          }`,
        );
      });
      const latest = checkpoints ? (await loadLatestValid(cfg.out))?.contents : undefined;
      const point = latest ?? resumed;
      if (point) await group.load(point);
      const resumedFrom = point?.state.step ?? 0;
      metrics.close();
      await keepMetricsUpTo(metricsPath, resumedFrom);
      metrics = new MetricsWriter(metricsPath);
      say(`recovered at step ${resumedFrom} (rank incarnations ${incarnations.join(", ")})`);
      return {
        step: failed,
        reason,
        detectedAt,
        recoveredAt: Date.now(),
        resumedFrom,
        stepsRedone: failed - 1 - resumedFrom,
        incarnations,
      };
    };

    const stepMs: number[] = [];
    /** Each traced step's timed ops, by rank; and every step's record, for the overlap summary. */
    const traced = new Map<number, TimedOp[][]>();
    const overlapRecords: Record<string, unknown>[] = [];
    const recoveries: Recovery[] = [];
    const skippedSteps: number[] = [];
    let badInARow = 0;
    let tokens = 0;
    for (let step = start; step < cfg.steps;) {
      const done = step + 1;
      try {
        const s0 = performance.now();
        const trace = cfg.traceSteps.includes(done);
        const ranks = await group.all((r) => r.trainStep(step, { trace }));
        const ms = performance.now() - s0;
        const stepTokens = ranks.reduce((n, m) => n + m.tokens, 0);
        stepMs.push(ms);
        tokens += stepTokens;
        const m = ranks[0];
        const record: StepRecord = {
          step: done,
          loss: m.loss,
          lm_loss: m.lmLoss,
          aux_loss: m.auxLoss,
          tokens_per_s: stepTokens / (ms / 1000),
          drop_rate: m.dropRate,
          lr: m.lr,
          grad_norm: m.gradNorm,
          step_ms: ms,
          ...overlapFields(ranks.map((r) => r.overlap)),
        };
        if (m.gates.length > 0) {
          const gates = m.gates.map(gateHealth);
          record.load_cv = meanLoadCv(gates);
          record.gates = gates;
          stepGates.push(m.gates);
          if (stepGates.length > Math.ceil(cfg.steps / 4)) stepGates.shift();
          const fresh = collapses.observe(done, m.gates);
          if (fresh.length > 0) {
            bar?.done();
            for (const c of fresh) {
              say(
                `warning: step ${done}: ${c.gate} expert ${c.expert} got no token in steps ` +
                  `${c.from}-${c.to} (routing collapse)`,
              );
            }
          }
          if (collapses.ongoing.length > 0) {
            record.collapsed = collapses.ongoing.map((c) => ({ gate: c.gate, expert: c.expert }));
          }
        }
        const spike = m.skipped ? null : spikes.observe(done, m.loss, m.gradNorm);
        if (spike) {
          record.spike = spike.reason;
          bar?.done();
          say(
            `warning: step ${done}: spike: loss ${spike.loss.toFixed(3)} ` +
              `(median of the last steps ${spike.medianLoss.toFixed(3)}), gradient norm ` +
              `${spike.gradNorm.toPrecision(3)} (median ${spike.medianGradNorm.toPrecision(3)})`,
          );
        }
        if (trace) traced.set(done, ranks.map((r) => r.overlap?.ops ?? []));
        overlapRecords.push(record);
        if (m.skipped) {
          record.skipped = 1;
          skippedSteps.push(done);
          badInARow++;
          bar?.done();
          say(
            `warning: step ${done}: loss ${m.loss}, gradient norm ${m.gradNorm} ` +
              `(NaN or infinite); step skipped, parameters and optimizer state unchanged`,
          );
          if (badInARow >= cfg.maxBadSteps) {
            metrics.append(record);
            throw new TrainingStopped(
              `${badInARow} NaN/Inf steps in a row (steps ${done - badInARow + 1}-${done}); ` +
                `stopping (${label("maxBadSteps")} ${cfg.maxBadSteps})`,
            );
          }
        } else badInARow = 0;
        bar?.update({ step: done, loss: m.loss, tokensPerS: record.tokens_per_s });
        const last = done === cfg.steps;
        if (last || (cfg.evalEvery > 0 && done % cfg.evalEvery === 0)) {
          const v = await validate();
          record.val_loss = v.loss;
          record.val_ppl = Math.exp(v.loss);
          if (v.gates.length > 0) {
            const dropped = v.gates.reduce((a, g) => a + g.drop_rate, 0) / v.gates.length;
            record.val_drop_rate = dropped;
            record.val_load_cv = meanLoadCv(v.gates);
            record.val_gates = v.gates;
            const idle = idleExperts(v.gates);
            if (idle.length > 0) {
              record.val_idle = idle;
              bar?.done();
              say(
                `warning: step ${done}: validation left ${
                  idle.map((x) => `${x.gate} expert ${x.expert}`).join(", ")
                } without a token`,
              );
            }
          }
          if (last) finalEval = v.gates;
          if (last && hasHeldout) {
            heldoutLoss = (await validate("heldout")).loss;
            record.heldout_loss = heldoutLoss;
          }
          bar?.done();
          say(
            `step ${done}: validation loss ${record.val_loss.toFixed(4)}, ` +
              `perplexity ${record.val_ppl.toFixed(2)}` +
              (last && heldoutLoss !== null
                ? `; held-out text loss ${heldoutLoss.toFixed(4)}`
                : ""),
          );
        }
        metrics.append(record);
        if (cfg.ckptEvery > 0 && done % cfg.ckptEvery === 0 && done < cfg.steps) {
          await save(done);
        }
        await options.onStep?.(done, group);
        step = done;
      } catch (e) {
        if (!survivable(e)) throw e;
        const reason = (e as Error).message.split("\n")[0];
        if (recoveries.length >= cfg.maxRestarts) {
          throw new TrainingStopped(
            `step ${done}: ${reason}; recovery budget spent ` +
              `(${label("maxRestarts")} ${cfg.maxRestarts}, ${recoveries.length} used)`,
          );
        }
        const r = await recover(done, reason);
        recoveries.push(r);
        step = r.resumedFrom;
        // As in metrics.jsonl, the steps to be redone drop out of the summary.
        const kept = overlapRecords.filter((m) => (m.step as number) <= step);
        overlapRecords.splice(0, overlapRecords.length, ...kept);
      }
    }
    bar?.done();
    const valLoss = overlapRecords.at(-1)?.val_loss as number;
    const checkpoint = await save(cfg.steps);
    const trace = traced.size > 0 ? `${cfg.out}/trace.json` : null;
    if (trace) {
      const runs = [...traced].map(([step, ranks]) => ({ name: `step ${step}`, ranks }));
      await Deno.writeTextFile(trace, JSON.stringify(chromeTrace(runs)));
    }
    const medianStepMs = stepMs.length ? stepMs.toSorted((a, b) => a - b)[stepMs.length >> 1] : NaN;
    const summary: TrainSummary = {
      out: cfg.out,
      steps: cfg.steps,
      valLoss,
      heldoutLoss,
      valPpl: Math.exp(valLoss),
      checkpoint,
      wallS: (performance.now() - t0) / 1000,
      stepMs: medianStepMs,
      tokensPerS: tokens / (stepMs.reduce((a, b) => a + b, 0) / 1000),
      recoveries,
      skippedSteps,
      overlap: overlapSummary(overlapRecords),
      routing: stepGates.length > 0 ? { train: trainRouting(stepGates), eval: finalEval } : null,
      collapses: [...collapses.collapses],
      spikes: [...spikes.spikes],
      trace,
      mfu: stepMs.length ? await utilisation(cfg, group, medianStepMs) : null,
    };
    await writeSummary(cfg, summary);
    return summary;
  } finally {
    metrics?.close();
    await shutdown();
  }
}

/** MFU of the run: the model's FLOPs a rank and step over its measured matmul rate. */
async function utilisation(
  cfg: TrainConfig,
  group: RankGroup,
  stepMs: number,
): Promise<ModelFlopUtilisation> {
  const rows = cfg.batch / cfg.ranks;
  const shape: StepShape = {
    batch: rows,
    seq: cfg.seq,
    tokens: rows * cfg.seq,
    ranks: cfg.ranks,
    training: true,
    bytesPerElement: 4,
    rowsPerChoice: 1,
  };
  const modelFlopsPerStep = programFlops(gpt(modelConfigOf(cfg)).program(true), shape);
  const rates = await group.all((r) => r.matmulRate());
  const matmulFlopsPerS = rates.reduce((a, b) => a + b, 0) / rates.length;
  const modelFlopsPerS = modelFlopsPerStep / (stepMs / 1e3);
  return {
    modelFlopsPerStep,
    modelFlopsPerS,
    matmulFlopsPerS,
    mfu: modelFlopsPerS / matmulFlopsPerS,
  };
}

/** One line of `metrics.jsonl` as the loop builds it. */
interface StepRecord {
  [field: string]: unknown;
  step: number;
  tokens_per_s: number;
  val_loss?: number;
  val_ppl?: number;
}

/** Each gate's demand and drops summed over `steps`, as health figures. */
export function trainRouting(steps: readonly (readonly GateStats[])[]): GateHealth[] {
  const sums = new Map<string, GateStats>();
  for (const gates of steps) {
    for (const g of gates) {
      const acc = sums.get(g.name);
      if (!acc) sums.set(g.name, { ...g, load: [...g.load], demand: [...g.demand] });
      else {
        g.demand.forEach((n, e) => acc.demand[e] += n);
        g.load.forEach((n, e) => acc.load[e] += n);
        acc.dropped += g.dropped;
        acc.assignments += g.assignments;
      }
    }
  }
  return [...sums.values()].map(gateHealth);
}

/**
 * Errors of a lost rank, a failed collective or a NATS outage, which a
 * recovery from the last checkpoint may cure.
 */
function survivable(e: unknown): boolean {
  if (e instanceof ActorDiedError || e instanceof BusOutageError) return true;
  return e instanceof RemoteError &&
    ["PeerDiedError", "CollectiveTimeoutError", "CommunicatorClosedError", "ActorDiedError"]
      .includes(e.remoteName);
}

/** Linear warm-up over the first 5% of the steps (none for a 1-step run). */
function warmupSteps(steps: number): number {
  return Math.min(Math.max(1, Math.round(steps / 20)), steps - 1);
}

/** `scmoe-pos2 (cg1)`, `top2`, ...: the variant as runs and benchmarks name it. */
function describe(cfg: Pick<TrainConfig, "variant" | "pos" | "combiner">): string {
  return cfg.variant === "scmoe" ? `scmoe-pos${cfg.pos} (${cfg.combiner})` : cfg.variant;
}

/** The run settings saved beside the model config (and checked on resume). */
function runSettings(cfg: TrainConfig): Record<string, unknown> {
  const { variant, pos, combiner, size, steps, batch, seq, lr, seed, ranks, backend } = cfg;
  return {
    variant,
    pos,
    combiner,
    size,
    steps,
    batch,
    seq,
    lr,
    seed,
    ranks,
    backend,
    data: recordedData(cfg.data),
  };
}

/** The data spec as a run folder records it: a token source by its sizes only. */
function recordedData(data: DataSpec): Record<string, unknown> {
  return data.kind === "tokens"
    ? { kind: "tokens", trainTokens: data.train.length, valTokens: data.val.length }
    : { ...data };
}

/** The checkpoint `--resume` continues, checked against the command line. */
async function resumePoint(
  cfg: TrainConfig,
  config: { model: ModelConfig; train: Record<string, unknown> },
  label: (key: keyof TrainConfig) => string,
): Promise<CheckpointContents> {
  const found = await loadLatestValid(cfg.out);
  if (found === null) throw new ConfigError(`${label("resume")}: no checkpoint in ${cfg.out}`);
  for (const skipped of found.skipped) console.error(`warning: skipped ${skipped}`);
  const saved = found.contents.config as {
    model?: Record<string, unknown>;
    train?: typeof config.train;
  };
  const pairs: [string, unknown, unknown][] = [
    ...Object.entries(config.model).map((
      [k, v],
    ): [string, unknown, unknown] => [k, v, saved.model?.[k]]),
    ...["seed", "batch"].map((
      k,
    ): [string, unknown, unknown] => [k, config.train[k], saved.train?.[k]]),
  ];
  const differs = pairs.find(([, now, then]) => JSON.stringify(now) !== JSON.stringify(then));
  if (differs) {
    const [key, now, then] = differs;
    throw new ConfigError(
      `${label("resume")}: ${found.path} was trained with ${key} ${JSON.stringify(then)}, ` +
        `not ${JSON.stringify(now)}; pass the settings it was trained with`,
    );
  }
  if (found.contents.state.step >= cfg.steps) {
    throw new ConfigError(
      `${label("resume")}: ${found.path} is at step ${found.contents.state.step}; ` +
        `pass ${label("steps")} above it to train further`,
    );
  }
  return found.contents;
}

/** Refuses to start a fresh run where a previous run's checkpoints or metrics are. */
async function assertFresh(
  out: string,
  label: (key: keyof TrainConfig) => string,
): Promise<void> {
  for (const name of ["latest", "metrics.jsonl"]) {
    try {
      await Deno.stat(`${out}/${name}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    throw new ConfigError(
      `${out} already holds a run; pass ${label("resume")} to continue it or another ${
        label("out")
      }`,
    );
  }
}

/** Drops metric lines past `step` (left by a run that stopped after its last checkpoint). */
async function keepMetricsUpTo(path: string, step: number): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const kept = text.split("\n").filter((line) => line !== "" && JSON.parse(line).step <= step);
  await Deno.writeTextFile(path, kept.map((l) => l + "\n").join(""));
}

/**
 * Writes `DIR/summary.json`: the final loss and perplexity, speed, the
 * overlap medians, recoveries, the resolved settings (a token source by its
 * size only) and the code that ran.
 */
async function writeSummary(cfg: TrainConfig, summary: TrainSummary): Promise<void> {
  const data = recordedData(cfg.data);
  const finite = (x: number) => Number.isFinite(x) ? x : null;
  await Deno.writeTextFile(
    `${cfg.out}/summary.json`,
    JSON.stringify(
      {
        val_loss: finite(summary.valLoss),
        val_ppl: finite(summary.valPpl),
        heldout_loss: summary.heldoutLoss === null ? null : finite(summary.heldoutLoss),
        steps: summary.steps,
        tokens_per_s: finite(summary.tokensPerS),
        step_ms: finite(summary.stepMs),
        wall_s: summary.wallS,
        overlap: summary.overlap,
        routing: summary.routing,
        collapses: summary.collapses,
        spikes: summary.spikes,
        recoveries: summary.recoveries,
        skipped_steps: summary.skippedSteps,
        checkpoint: summary.checkpoint,
        trace: summary.trace,
        mfu: summary.mfu && {
          model_flops_per_step: summary.mfu.modelFlopsPerStep,
          model_flops_per_s: summary.mfu.modelFlopsPerS,
          matmul_flops_per_s: summary.mfu.matmulFlopsPerS,
          mfu: summary.mfu.mfu,
        },
        config: { ...cfg, data, model: modelConfigOf(cfg) },
        code: await codeVersion(),
      },
      null,
      2,
    ) + "\n",
  );
}
