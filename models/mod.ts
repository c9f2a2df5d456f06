/**
 * The MoE layer of the ScMoE paper (Cai et al., "Shortcut-connected Expert
 * Parallelism for Accelerating Mixture-of-Experts", arXiv:2404.05019) for
 * any model's program of steps, the paper's GPT built on it, and their
 * expert-parallel execution with the overlap scheduler.
 *
 * ```text
 * setupBackend(name?: "wasm" | "cpu" | "webgpu" | "tensorflow" | "tensorflow-gpu",
 *              { allowSoftwareAdapter? }): Promise<void>     BackendUnavailableError when it cannot run
 * resolveConfig(partial?: Partial<ModelConfig>): ModelConfig          the GPT's defaults + validation
 * createModel(config? | network, { rank?, size?, seed? }): Model     rank's replica: dense + experts [lo, hi)
 * trainStep(model, batch: Batch, { comm?, groups?, step?, scheduler? }): Promise<StepResult>
 *     -> { loss, lmLoss, auxLoss, stats: GateStats[], dropRate, grads: Map<name, Tensor>, overlap? }
 *        grads of the GLOBAL mean loss: dense all-reduced, experts on their owner; caller disposes
 * evaluate(model, batch: Batch, { comm?, groups? }): Promise<LossResult>     no noise, eval capacity
 * forward(model, { tokens, batchSize, seqLen }, { comm?, groups? }): Promise<Tensor>   logits [B, T, V]
 * disposeModel(model): void
 *
 * Your own model:
 * computeStep({ name, inputs: { x: "value" }, outputs: { y: "value" }, run }): ComputeStep
 * moeLayer({ name, variant, input, tap?, output, dim, hidden, experts, ... }): { steps, params, aux }
 * lossStep({ aux, auxWeight, auxConvention? }): ComputeStep
 *     loss = CE(logits, targets) + w * sum over layers of mean(layer's aux)   ("sum", the default)
 *                                + w * mean(every aux)                       ("mean")
 * Network = { params: ParamSpec[], program(withLoss): Step[] }     what createModel runs
 * gpt(config): Network; paramSpecs(config): ParamSpec[]             the GPT, one user of the layer
 *
 * The overlap:
 * new OverlapScheduler(options?)     the adaptive schedule a caller holds (model.schedulers by default)
 * explainOverlap(network | steps, scheduler?): string    which compute each exchange overlaps
 *
 * Before paying for a cluster (simulate.ts, hardware.ts, cost.ts):
 * simulateVariants(model, { hardware: HARDWARE["h100-ib"], ep, dp?, batch, seq }): SimResult[]
 *     every variant's step time, compute, exposed and hidden communication, speed-up over top-2
 * simulateNetwork(network, setup, schedule?, { training? }): SimPass     your own network's program
 * measureDeviceRates(): MeasuredRates      the active backend's matmul, memory and per-kernel rates
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
 *   `blocks.{i}.moe.shared.w1`, `blocks.{i}.moe.cg.w`, `blocks.{i}.moe.ln_tap.g`, `lnf.g`;
 *   with `moeShare` above 1 (DGMoE-Share) the shared gate and experts are
 *   `moe.{g}.gate.wg`, `moe.{g}.experts.{e}.w1` ({@linkcode moeModule}).
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
export {
  createModel,
  disposeModel,
  evaluate,
  forward,
  type ForwardInput,
  forwardRun,
  type LossResult,
  type Model,
  type ModelOptions,
  type ModelSchedulers,
  type RunOptions,
  type StepResult,
  trainStep,
} from "./model.ts";
export {
  type ExpertOf,
  type Init,
  initialValues,
  normal,
  ONES,
  ParamList,
  type ParamSpec,
  ZEROS,
} from "./params.ts";
export { gpt, moeModule, paramSpecs } from "./gpt.ts";
export { type MoeLayer, moeLayer, type MoeLayerOptions, type MoeVariant } from "./moe_layer.ts";
export {
  AUX_CONVENTIONS,
  type AuxConvention,
  type ComputeSpec,
  type ComputeStep,
  computeStep,
  type ExchangeStep,
  type LossOptions,
  lossStep,
  type MoePart,
  type Network,
  type RouteStep,
  type RunContext,
  type Step,
} from "./steps.ts";
export {
  explainOverlap,
  type GateSchedule,
  type GateWindow,
  OverlapScheduler,
  type PlannerOptions,
  type ScheduledProgram,
  type ScheduleOptions,
  serialOrder,
  type WindowTimes,
} from "./scheduler.ts";
export { attention, crossEntropy, embed, ffn, gelu, head, layerNorm, linear } from "./layers.ts";
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
export {
  addCosts,
  attentionCost,
  type CostFn,
  elementwise,
  type ExchangeCost,
  ffnCost,
  geluCost,
  layerNormCost,
  linearCost,
  NO_COST,
  scaleCost,
  type StepCost,
  type StepShape,
} from "./cost.ts";
export {
  allreduceS,
  alltoallS,
  describeHardware,
  type DeviceRates,
  GPU_MATMUL_EFFICIENCY,
  GPU_MEMORY_EFFICIENCY,
  HARDWARE,
  type Hardware,
  HARDWARE_NAMES,
  HERE_MEASURED,
  type LinkRates,
  type Topology,
} from "./hardware.ts";
export {
  computeS,
  EP_SWEEP,
  expertsAt,
  programFlops,
  SIM_MODEL_NAMES,
  SIM_MODELS,
  SIM_VARIANTS,
  type SimModel,
  type SimPass,
  type SimResult,
  type SimSetup,
  simulateNetwork,
  simulateVariants,
  type SimVariant,
  stepShape,
  sweepEp,
  type SweepPoint,
  type TimeBreakdown,
  timeBreakdown,
} from "./simulate.ts";
export {
  measureDeviceRates,
  type MeasuredRates,
  measureMatmulRate,
  type MeasureOptions,
} from "./device_rates.ts";
export { fitDeviceRates, nnls, type OpSample, opSamples, type RateFit } from "./calibrate.ts";
