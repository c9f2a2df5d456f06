/**
 * `deno task train [flags]`: expert-parallel training of one model variant on
 * N rank actors, with a progress bar, `DIR/metrics.jsonl` (one line per
 * step, with the MoE blocks' overlap figures), a Chrome trace of the steps
 * of `--trace-steps`, periodic and final validation, checkpoints, and
 * `--resume`. With no
 * flags it is the project's main job: ScMoE Pos-2 (CG-1) on 2 local ranks,
 * tiny preset. `deno task train --help` lists the flags.
 *
 * @module
 */
import { ActorDiedError, init, type InitOptions, RemoteError, shutdown } from "../actors/mod.ts";
import { type CheckpointContents, checkpointName, loadLatestValid } from "../models/checkpoint.ts";
import type { ModelConfig } from "../models/config.ts";
import {
  modelConfigOf,
  parseTrainFlags,
  type TrainFlags,
  trainUsage,
  UsageError,
} from "../models/config_flags.ts";
import { formatDuration, formatRate, MetricsWriter, ProgressBar } from "../models/progress.ts";
import { overlapFields, type OverlapSummary, overlapSummary } from "../models/overlap_metrics.ts";
import type { TimedOp } from "../models/overlap_report.ts";
import { chromeTrace } from "../models/trace.ts";
import { BusOutageError, RankGroup } from "./ranks.ts";

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
  /** The Chrome trace of `--trace-steps`, when asked for. */
  trace: string | null;
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

/** Exit code of the CLI when the run stopped on faults ({@linkcode TrainingStopped}). */
export const EXIT_STOPPED = 3;

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
}

/**
 * Runs (or with `flags.resume` continues) one training run: starts the
 * actor runtime, the ranks, trains, validates, checkpoints, and shuts the
 * runtime down whatever happens.
 *
 * @throws {UsageError} before writing anything, when `--out` cannot be used
 *   (a fresh run into a directory holding one, a resume without a matching checkpoint).
 */
export async function train(flags: TrainFlags, options: TrainOptions = {}): Promise<TrainSummary> {
  const { checkpoints = true, verbose = true } = options;
  const t0 = performance.now();
  const say = verbose ? (line: string) => console.error(line) : () => {};
  const model = modelConfigOf(flags);
  const config = { model, train: runSettings(flags) };
  const resumed = flags.resume ? await resumePoint(flags, config) : null;
  if (!flags.resume) await assertFresh(flags.out);
  const start = resumed?.state.step ?? 0;
  await Deno.mkdir(flags.out, { recursive: true });
  const metricsPath = `${flags.out}/metrics.jsonl`;
  await keepMetricsUpTo(metricsPath, start);
  let metrics = new MetricsWriter(metricsPath);

  await init({ ...options.init, cluster: flags.cluster });
  try {
    const { group, paramCounts } = await RankGroup.start(
      {
        model,
        seed: flags.seed,
        backend: flags.backend,
        allowSoftwareWebgpu: flags.allowSoftwareWebgpu,
        data: { seq: flags.seq, batch: flags.batch },
        optimizer: { lr: flags.lr, warmup: warmupSteps(flags.steps), total: flags.steps },
        nanGradSteps: options.nanGradSteps,
      },
      flags.ranks,
      model,
      {
        maxRestarts: flags.maxRestarts,
        collectiveTimeoutMs: flags.collectiveTimeoutS * 1000,
        hosts: options.rankHosts,
      },
    );
    say(
      `${describe(flags)}: ${flags.ranks} ${flags.cluster} ranks, ` +
        `${paramCounts.map((n) => (n / 1e6).toFixed(2)).join("+")} M parameters, ` +
        `${flags.batch}x${flags.seq} tokens a step, backend ${flags.backend}`,
    );
    if (resumed) {
      await group.load(resumed);
      say(
        `resumed ${flags.out}/${checkpointName(start)} (trained on ${resumed.state.ranks} ranks)`,
      );
    }
    const save = async (step: number) =>
      checkpoints
        ? await group.save(flags.out, { step, seed: flags.seed, ranks: flags.ranks }, config)
        : null;
    const validate = async () => {
      const [loss] = await group.all((r) => r.evaluate(VAL_BATCHES));
      return loss;
    };
    const bar = verbose ? new ProgressBar({ total: flags.steps }) : null;
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
      const latest = checkpoints ? (await loadLatestValid(flags.out))?.contents : undefined;
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
    for (let step = start; step < flags.steps;) {
      const done = step + 1;
      try {
        const s0 = performance.now();
        const trace = flags.traceSteps.includes(done);
        const ranks = await group.all((r) => r.trainStep(step, { trace }));
        const ms = performance.now() - s0;
        const stepTokens = ranks.reduce((n, m) => n + m.tokens, 0);
        stepMs.push(ms);
        tokens += stepTokens;
        const m = ranks[0];
        const record: Record<string, number> & Record<string, unknown> = {
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
          if (badInARow >= flags.maxBadSteps) {
            metrics.append(record);
            throw new TrainingStopped(
              `${badInARow} NaN/Inf steps in a row (steps ${done - badInARow + 1}-${done}); ` +
                `stopping (--max-bad-steps ${flags.maxBadSteps})`,
            );
          }
        } else badInARow = 0;
        bar?.update({ step: done, loss: m.loss, tokensPerS: record.tokens_per_s });
        if (flags.evalEvery > 0 && done % flags.evalEvery === 0 && done < flags.steps) {
          record.val_loss = await validate();
          record.val_ppl = Math.exp(record.val_loss);
          bar?.done();
          say(
            `step ${done}: validation loss ${record.val_loss.toFixed(4)}, ` +
              `perplexity ${record.val_ppl.toFixed(2)}`,
          );
        }
        metrics.append(record);
        if (flags.ckptEvery > 0 && done % flags.ckptEvery === 0 && done < flags.steps) {
          await save(done);
        }
        await options.onStep?.(done, group);
        step = done;
      } catch (e) {
        if (!survivable(e)) throw e;
        const reason = (e as Error).message.split("\n")[0];
        if (recoveries.length >= flags.maxRestarts) {
          throw new TrainingStopped(
            `step ${done}: ${reason}; recovery budget spent ` +
              `(--max-restarts ${flags.maxRestarts}, ${recoveries.length} used)`,
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
    const valLoss = await validate();
    const checkpoint = await save(flags.steps);
    const trace = traced.size > 0 ? `${flags.out}/trace.json` : null;
    if (trace) {
      const runs = [...traced].map(([step, ranks]) => ({ name: `step ${step}`, ranks }));
      await Deno.writeTextFile(trace, JSON.stringify(chromeTrace(runs)));
    }
    return {
      out: flags.out,
      steps: flags.steps,
      valLoss,
      valPpl: Math.exp(valLoss),
      checkpoint,
      wallS: (performance.now() - t0) / 1000,
      stepMs: stepMs.length ? stepMs.toSorted((a, b) => a - b)[stepMs.length >> 1] : NaN,
      tokensPerS: tokens / (stepMs.reduce((a, b) => a + b, 0) / 1000),
      recoveries,
      skippedSteps,
      overlap: overlapSummary(overlapRecords),
      trace,
    };
  } finally {
    metrics.close();
    await shutdown();
  }
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
function describe(flags: Pick<TrainFlags, "variant" | "pos" | "combiner">): string {
  return flags.variant === "scmoe" ? `scmoe-pos${flags.pos} (${flags.combiner})` : flags.variant;
}

/** The run settings saved beside the model config (and checked on resume). */
function runSettings(flags: TrainFlags): Record<string, unknown> {
  const { variant, pos, combiner, size, steps, batch, seq, lr, seed, ranks, backend } = flags;
  return { variant, pos, combiner, size, steps, batch, seq, lr, seed, ranks, backend };
}

/** The checkpoint `--resume` continues, checked against the command line. */
async function resumePoint(
  flags: TrainFlags,
  config: { model: ModelConfig; train: Record<string, unknown> },
): Promise<CheckpointContents> {
  const found = await loadLatestValid(flags.out);
  if (found === null) throw new UsageError(`--resume: no checkpoint in ${flags.out}`);
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
    throw new UsageError(
      `--resume: ${found.path} was trained with ${key} ${JSON.stringify(then)}, ` +
        `not ${JSON.stringify(now)}; pass the flags it was trained with`,
    );
  }
  if (found.contents.state.step >= flags.steps) {
    throw new UsageError(
      `--resume: ${found.path} is at step ${found.contents.state.step}; ` +
        `pass --steps above it to train further`,
    );
  }
  return found.contents;
}

/** Refuses to start a fresh run where a previous run's checkpoints or metrics are. */
async function assertFresh(out: string): Promise<void> {
  for (const name of ["latest", "metrics.jsonl"]) {
    try {
      await Deno.stat(`${out}/${name}`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    throw new UsageError(
      `${out} already holds a run; pass --resume to continue it or another --out`,
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

/** The CLI: returns the exit code (2 for a bad command line, nothing written). */
export async function main(args: string[]): Promise<number> {
  let flags: TrainFlags;
  try {
    flags = parseTrainFlags(args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`error: ${e.message}`);
    return 2;
  }
  if (flags.help) {
    console.log(trainUsage());
    return 0;
  }
  let summary: TrainSummary;
  try {
    summary = await train(flags);
  } catch (e) {
    if (!(e instanceof UsageError || e instanceof TrainingStopped)) throw e;
    console.error(`error: ${e.message}`);
    return e instanceof UsageError ? 2 : EXIT_STOPPED;
  }
  if (flags.json) console.log(JSON.stringify(summary));
  else {
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
      `outputs: ${summary.out}/metrics.jsonl` +
        (summary.checkpoint ? `, checkpoint ${summary.checkpoint}` : "") +
        (summary.trace ? `, trace ${summary.trace}` : ""),
    );
  }
  return 0;
}

if (import.meta.main) {
  Deno.addSignalListener("SIGINT", () => {
    console.error("\ninterrupted; stopping the ranks");
    shutdown().finally(() => Deno.exit(130));
  });
  Deno.exit(await main(Deno.args));
}
