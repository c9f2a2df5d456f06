/**
 * The MoE language model of the ScMoE paper (Cai et al., "Shortcut-connected
 * Expert Parallelism for Accelerating Mixture-of-Experts", arXiv:2404.05019)
 * and its expert-parallel execution.
 *
 * ```text
 * setupBackend(name?: "wasm" | "cpu" | "webgpu" | "tensorflow" | "tensorflow-gpu",
 *              { allowSoftwareAdapter? }): Promise<void>     BackendUnavailableError when it cannot run
 * resolveConfig(partial?: Partial<ModelConfig>): ModelConfig          defaults + validation
 * createModel(config?, { rank?, size?, seed? }): Model               rank's replica: dense + experts [lo, hi)
 * trainStep(model, batch: Batch, { comm?, groups?, step? }): Promise<StepResult>
 *     -> { loss, lmLoss, auxLoss, stats: GateStats[], dropRate, grads: Map<name, Tensor> }
 *        grads of the GLOBAL mean loss: dense all-reduced, experts on their owner; caller disposes
 * evaluate(model, batch: Batch, { comm?, groups? }): Promise<LossResult>     no noise, eval capacity
 * forward(model, { tokens, batchSize, seqLen }, { comm?, groups? }): Promise<Tensor>   logits [B, T, V]
 * disposeModel(model): void
 * paramSpecs(config): ParamSpec[]   every parameter of the full model: name, shape, init, expert
 * buildProgram(config, withLoss): Step[]   the step program a scheduler may reorder
 * ```
 *
 * - `Batch` is `models/data.ts`'s micro-batch: `[rows, T + 1]` windows.
 * - With `comm`, every rank of the group makes the same calls in the same
 *   order, each on its equal share of the global batch (rank r: the r-th
 *   slice). Without it, one rank holds every expert and the step is one tape;
 *   `groups: N` there reproduces N ranks exactly (capacity and aux loss are
 *   per rank's micro-batch).
 * - Parameters are `tf.Variable`s in `model.params`, named by role:
 *   `wte`, `wpe`, `blocks.{i}.ln1.g`, `blocks.{i}.attn.wqkv`, `blocks.{i}.mlp.w1`,
 *   `blocks.{i}.moe.gate.wg`, `blocks.{i}.moe.experts.{e}.w1` (global e),
 *   `blocks.{i}.moe.shared.w1`, `blocks.{i}.moe.cg.w`, `blocks.{i}.moe.ln_tap.g`, `lnf.g`.
 *   Rank r of N holds experts `expertRange(r, N, E)` (checkpoint.ts), so a
 *   checkpoint re-shards by name.
 * - `model.step` keys the gate noise; restore it when resuming.
 *
 * @example
 * ```ts
 * import { createModel, setupBackend, trainStep } from "./mod.ts";
 * import { createMemoryGroup } from "../collectives/memory.ts";
 * await setupBackend("wasm");
 * const comms = createMemoryGroup(2);
 * const models = comms.map((c) => createModel({ variant: "scmoe", pos: 2 }, { rank: c.rank, size: 2 }));
 * const batch = { tokens: new Int32Array(2 * 65), rows: 2, cols: 65 }; // each rank's share
 * const results = await Promise.all(models.map((m, r) => trainStep(m, batch, { comm: comms[r] })));
 * ```
 *
 * @module
 */

export {
  type BackendName,
  BACKENDS,
  checkBackend,
  readsSynchronously,
  setupBackend,
  type SetupBackendOptions,
} from "./backend.ts";
/**
 * `setupBackend` cannot run the backend here (package missing, no GPU adapter,
 * or only a software one); one line naming the fix or the backend to use.
 */
export { BackendUnavailableError } from "./backend.ts";
export {
  type Combiner,
  type ModelConfig,
  resolveConfig,
  type Variant,
  VARIANTS,
} from "./config.ts";
export type { GateStats, Route } from "./gate.ts";
export type { ParamLookup } from "./layers.ts";
export type { PlannerOptions } from "./overlap_strategy.ts";
export {
  createModel,
  disposeModel,
  evaluate,
  forward,
  type ForwardInput,
  type LossResult,
  type Model,
  type ModelOptions,
  type RunOptions,
  type StepResult,
  trainStep,
} from "./model.ts";
export { type Init, type ParamSpec, paramSpecs } from "./params.ts";
export {
  buildProgram,
  type ComputeStep,
  type ExchangeStep,
  type RouteStep,
  type RunContext,
  type Step,
} from "./program.ts";
export type { ScheduleOptions } from "./scheduler.ts";
export type {
  BlockLayout,
  BlockOverlap,
  Measured,
  OverlapFigures,
  OverlapReport,
  TimedOp,
} from "./overlap_report.ts";
export {
  AdamW,
  type AdamWOptions,
  clipScale,
  type GradSquares,
  localGradSquares,
  type OptimizerState,
  type Schedule,
  warmupCosine,
  type WarmupCosineOptions,
} from "./optimizer.ts";
export {
  type CheckpointContents,
  CheckpointError,
  checkpointName,
  expertIndex,
  expertRange,
  type FoundCheckpoint,
  type HostArray,
  type HostTensor,
  loadCheckpoint,
  loadLatestValid,
  type LoadOptions,
  mergeShards,
  saveCheckpoint,
  type SaveOptions,
  shardExperts,
  type TrainState,
} from "./checkpoint.ts";
export {
  type Batch,
  brownData,
  type BrownDataOptions,
  type BrownDocument,
  loadBrown,
  type LoadBrownOptions,
  type SamplerOptions,
  type ShardOptions,
  VOCAB_SIZE,
  WindowSampler,
} from "./data.ts";
export { sampleToken, type SamplingOptions, seededUniform } from "./sample.ts";
export { type OverlapSummary, type StepOverlap } from "./overlap_metrics.ts";
