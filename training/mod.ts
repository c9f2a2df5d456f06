/**
 * Training on the library's terms: the loop `deno task train` runs
 * ({@linkcode train}), the group of rank actors it drives
 * ({@linkcode RankGroup}, {@linkcode RankActor}), the data sources (the Brown
 * corpus, a text file, tokens in memory), the run folder's metrics writer
 * and progress bar, and generation from a checkpoint.
 *
 * @example
 * ```ts ignore
 * import { generate, train } from "../mod.ts";
 * const run = await train({
 *   variant: "scmoe",
 *   pos: 2,
 *   data: { kind: "text", path: "my_corpus.txt" },
 *   steps: 60,
 *   out: "runs/mine",
 * });
 * console.log(run.valLoss);
 * await generate({ checkpoint: run.out, prompt: "Once", maxTokens: 40 }, console.log);
 * ```
 *
 * @module
 */
export {
  type Cluster,
  COMBINERS,
  ConfigError,
  modelConfigOf,
  resolveTrainConfig,
  type SettingLabel,
  type Size,
  type SizePreset,
  SIZES,
  type TrainConfig,
  type TrainSettings,
} from "./config.ts";
export {
  type BrownSource,
  DataError,
  type DataSpec,
  type DataSplits,
  openData,
  type TextFileSource,
  type TokenSource,
} from "./data_source.ts";
export {
  type ModelFlopUtilisation,
  type Recovery,
  type RoutingSummary,
  train,
  TrainingStopped,
  type TrainOptions,
  type TrainSummary,
  VAL_BATCHES,
} from "./train.ts";
export {
  generate,
  type GenerateOptions,
  type ResolvedGenerateOptions,
  resolveGenerateOptions,
} from "./generate.ts";
export {
  BusOutageError,
  RankGroup,
  type RankGroupOptions,
  type RankSettings,
} from "./rank_group.ts";
export {
  RankActor,
  type RankConfig,
  type RankMemory,
  type ShardData,
  type StepMetrics,
} from "./rank_actor.ts";
export {
  formatDuration,
  formatProgress,
  formatRate,
  MetricsWriter,
  ProgressBar,
  type ProgressBarOptions,
  type ProgressSink,
  type ProgressSnapshot,
} from "./progress.ts";
export { type CodeVersion, codeVersion } from "./version.ts";
export {
  type Collapse,
  type CollapseOptions,
  CollapseWatch,
  type GateHealth,
  gateHealth,
  meanLoadCv,
  type Spike,
  type SpikeOptions,
  SpikeWatch,
} from "./health.ts";
export {
  type CheckpointGroupOptions,
  evaluateCheckpoint,
  type EvaluateOptions,
  type RankData,
  readSavedRun,
  type SavedRun,
  withCheckpointGroup,
} from "./from_checkpoint.ts";
