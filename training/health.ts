/**
 * The health of a training run, step by step: how evenly each MoE gate
 * spreads its tokens over the experts (the coefficient of variation of the
 * per-expert demand), what share of its assignments capacity drops, whether
 * an expert has collapsed (no token for a stretch of steps), and whether a
 * step spiked (a gradient norm or a loss far above the run's recent ones).
 * `train` records all of it in `metrics.jsonl` and `summary.json` and warns
 * on stderr when a collapse or a spike happens.
 *
 * What the spikes of the tiny preset are (measured, seed 7 of ScMoE Pos-2
 * and seed 1 of the default run): not the data (the windows of the spiking
 * batches are ordinary text), not a kernel (the `cpu` backend gives the same
 * gradients as `wasm`), not expert parallelism (1 rank spikes as 2 do), not
 * the MoE layer (dense spikes too). They come while the model leaves the
 * unigram plateau: there the final LayerNorm's output is one direction
 * shared by every token (the unigram prior), and positions where the
 * residual stream nearly cancels make every pre-norm sublayer amplify by
 * `1 / std` (one position's gradient norm was 1,600 against 4 for its
 * neighbours). An ordinary Adam step (norm 0.47, unclipped) then turned that
 * shared direction (cosine -0.4 to the step before): the loss along the
 * update rose smoothly from 3.15 to 8.2, the prior inverted. Clipping bounds
 * the next step (gradient norm 208 clipped to 1), which brings the loss
 * back; a longer warm-up, beta2 0.99, Adam's eps 1e-6, half the learning
 * rate or scaled-up embeddings each moved or thinned them without removing
 * them, and cost validation loss.
 *
 * @example
 * ```ts
 * import { CollapseWatch, gateHealth, SpikeWatch } from "./health.ts";
 * const stats = { name: "blocks.3.moe.gate", load: [256, 256, 0, 0], demand: [256, 256, 0, 0],
 *   dropped: 0, assignments: 512 };
 * gateHealth(stats).load_cv; // 1
 * const collapses = new CollapseWatch({ steps: 2 });
 * collapses.observe(1, [stats]); // []
 * collapses.observe(2, [stats]); // experts 2 and 3: no token for 2 steps
 * new SpikeWatch().observe(1, 5.5, 4); // null: too early to tell
 * ```
 *
 * @module
 */
import type { GateStats } from "../models/gate.ts";
import { coefficientOfVariation, median } from "../models/stats.ts";

/** One gate application's routing in one step or evaluation, as `metrics.jsonl` records it. */
export interface GateHealth {
  /** The gate application, e.g. `blocks.1.moe.gate` or `blocks.1.moe.gate.preceding`. */
  name: string;
  /** Assignments that chose each expert (before capacity), summed over the ranks. */
  demand: number[];
  /** Coefficient of variation of `demand`: 0 balanced, `sqrt(E - 1)` all on one expert. */
  load_cv: number;
  /** Share of the assignments dropped past capacity. */
  drop_rate: number;
}

/** The health figures of one gate application's statistics. */
export function gateHealth(stats: GateStats): GateHealth {
  return {
    name: stats.name,
    demand: [...stats.demand],
    load_cv: coefficientOfVariation(stats.demand),
    drop_rate: stats.assignments > 0 ? stats.dropped / stats.assignments : 0,
  };
}

/** The mean of the gates' load CVs (0 without gates). */
export function meanLoadCv(gates: readonly GateHealth[]): number {
  return gates.length ? gates.reduce((a, g) => a + g.load_cv, 0) / gates.length : 0;
}

/** An expert that got no token in one pass (a validation, say). */
export interface IdleExpert {
  /** The gate application. */
  gate: string;
  /** The expert's index. */
  expert: number;
}

/** The experts that no token chose in one pass, gate by gate. */
export function idleExperts(gates: readonly GateHealth[]): IdleExpert[] {
  return gates.flatMap((g) =>
    g.demand.flatMap((n, expert) => n === 0 ? [{ gate: g.name, expert }] : [])
  );
}

/** An expert that got no token for a stretch of steps. */
export interface Collapse {
  /** The gate application. */
  gate: string;
  /** The expert (global index). */
  expert: number;
  /** First step (1-based) of the stretch with no token. */
  from: number;
  /** Last step of the stretch seen so far (the run's last step while it lasts). */
  to: number;
}

/** Options of {@linkcode CollapseWatch}. */
export interface CollapseOptions {
  /** Steps in a row without a token that make a collapse (default 10). */
  steps?: number;
}

/**
 * Watches the per-expert demand of every gate, step by step, and reports an
 * expert the moment it has had no token for `steps` steps in a row (once per
 * stretch; a token ends the stretch).
 */
export class CollapseWatch {
  readonly #steps: number;
  /** First empty step of each (gate, expert) in a stretch, by `gate#expert`. */
  readonly #since = new Map<string, number>();
  readonly #open = new Map<string, Collapse>();
  readonly #all: Collapse[] = [];

  /** Starts with no history. */
  constructor(options: CollapseOptions = {}) {
    this.#steps = options.steps ?? 10;
    if (!(Number.isInteger(this.#steps) && this.#steps >= 1)) {
      throw new RangeError(`collapse steps must be a positive integer, got ${this.#steps}`);
    }
  }

  /**
   * Takes step `step`'s gate statistics; returns the collapses that this
   * step made (each reported once, when its stretch reaches `steps`).
   */
  observe(step: number, gates: readonly Pick<GateStats, "name" | "demand">[]): Collapse[] {
    const fresh: Collapse[] = [];
    for (const g of gates) {
      g.demand.forEach((n, expert) => {
        const key = `${g.name}#${expert}`;
        if (n > 0) {
          this.#since.delete(key);
          this.#open.delete(key);
          return;
        }
        const from = this.#since.get(key) ?? step;
        this.#since.set(key, from);
        const open = this.#open.get(key);
        if (open) open.to = step;
        else if (step - from + 1 >= this.#steps) {
          const c: Collapse = { gate: g.name, expert, from, to: step };
          this.#open.set(key, c);
          this.#all.push(c);
          fresh.push(c);
        }
      });
    }
    return fresh;
  }

  /** Every collapse so far, in the order found; `to` grows while a stretch lasts. */
  get collapses(): readonly Collapse[] {
    return this.#all;
  }

  /** The collapses still going on at the last step observed. */
  get ongoing(): readonly Collapse[] {
    return [...this.#open.values()];
  }
}

/** A step whose gradient norm or loss jumped far above the run's recent steps. */
export interface Spike {
  /** The step, 1-based. */
  step: number;
  /** Its training loss. */
  loss: number;
  /** Its gradient norm before clipping. */
  gradNorm: number;
  /** Median loss of the steps before it (the last `lossWindow`). */
  medianLoss: number;
  /** Median gradient norm of the steps before it (the last `window`). */
  medianGradNorm: number;
  /** What was too high: `grad_norm`, `loss`, or both. */
  reason: "grad_norm" | "loss" | "grad_norm+loss";
}

/** Options of {@linkcode SpikeWatch}. */
export interface SpikeOptions {
  /** Steps before the current one whose median gradient norm is its reference (default 20). */
  window?: number;
  /**
   * Steps before the current one whose median loss is its reference
   * (default 5: the loss falls fast early on, so only recent steps count).
   */
  lossWindow?: number;
  /** Steps seen before any spike is called (default 5). */
  minSteps?: number;
  /** A gradient norm above this many times the median is a spike (default 10). */
  gradFactor?: number;
  /** A loss above the median by more than this (nats) is a spike (default 1). */
  lossJump?: number;
}

/**
 * Calls a step a spike when its gradient norm exceeds `gradFactor` times the
 * median of the previous `window` steps' norms, or its loss exceeds the
 * median loss of the previous `lossWindow` steps by more than `lossJump`.
 * Medians, not means, so that one spike does not hide the next.
 */
export class SpikeWatch {
  readonly #window: number;
  readonly #lossWindow: number;
  readonly #minSteps: number;
  readonly #gradFactor: number;
  readonly #lossJump: number;
  readonly #losses: number[] = [];
  readonly #norms: number[] = [];
  readonly #spikes: Spike[] = [];

  /** Starts with no history. */
  constructor(options: SpikeOptions = {}) {
    this.#window = options.window ?? 20;
    this.#lossWindow = options.lossWindow ?? 5;
    this.#minSteps = options.minSteps ?? 5;
    this.#gradFactor = options.gradFactor ?? 10;
    this.#lossJump = options.lossJump ?? 1;
  }

  /**
   * Takes one step's loss and gradient norm; returns the spike when it is
   * one. Non-finite values (skipped steps) are neither spikes nor history.
   */
  observe(step: number, loss: number, gradNorm: number): Spike | null {
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) return null;
    let spike: Spike | null = null;
    if (this.#losses.length >= this.#minSteps) {
      const medianLoss = median(this.#losses.slice(-this.#lossWindow));
      const medianGradNorm = median(this.#norms);
      const byNorm = gradNorm > this.#gradFactor * medianGradNorm;
      const byLoss = loss > medianLoss + this.#lossJump;
      if (byNorm || byLoss) {
        const reason = byNorm && byLoss ? "grad_norm+loss" : byNorm ? "grad_norm" : "loss";
        spike = { step, loss, gradNorm, medianLoss, medianGradNorm, reason };
        this.#spikes.push(spike);
      }
    }
    this.#losses.push(loss);
    this.#norms.push(gradNorm);
    if (this.#losses.length > this.#window) {
      this.#losses.shift();
      this.#norms.shift();
    }
    return spike;
  }

  /** Every spike so far. */
  get spikes(): readonly Spike[] {
    return this.#spikes;
  }
}
