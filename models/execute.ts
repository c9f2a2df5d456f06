/**
 * Two ways to execute a {@linkcode Step} program.
 *
 * - {@linkcode runLocal}: one synchronous call on one rank that holds every
 *   expert (exchanges are the identity), so one tape covers the whole model.
 * - {@linkcode SegmentedRun}: expert-parallel, with a communicator. The
 *   forward runs step by step; an exchange returns a future that the first
 *   step reading its output awaits. The backward walks the steps in reverse:
 *   each compute step's vector-Jacobian product is recomputed from its saved
 *   inputs and the gradients of its outputs, each exchange sends gradients
 *   back along the route it came, as soon as they are complete. Steps run
 *   in the order given (see `scheduler.ts` for the overlap schedule); every
 *   op, wait and collective can be timed.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Communicator } from "../collectives/types.ts";
import { nowMs } from "../collectives/link.ts";
import { exchangeCounts, exchangeRows, rowsPerRank } from "./exchange.ts";
import type { ParamLookup } from "./layers.ts";
import type { TimedOp } from "./overlap_report.ts";
import {
  exchangedPerExpert,
  type ExchangeStep,
  layoutKey,
  type RunContext,
  type Step,
} from "./steps.ts";
import { backwardOrder } from "./scheduler.ts";

/** A parameter lookup over a map that throws on unknown names. */
export function lookupIn(params: ReadonlyMap<string, tf.Tensor>): ParamLookup {
  return (name) => {
    const t = params.get(name);
    if (!t) throw new Error(`no parameter "${name}" on this rank`);
    return t;
  };
}

/**
 * Runs the whole program in one synchronous call and returns every value.
 * The caller owns the tensors (call it inside `tf.tidy` or a gradient scope).
 */
export function runLocal(
  program: Step[],
  ctx: RunContext,
  p: ParamLookup,
): Map<string, tf.Tensor> {
  const values = new Map<string, tf.Tensor>();
  const get = (name: string) => values.get(name)!;
  for (const step of program) {
    switch (step.kind) {
      case "compute":
        step.run(step.inputs.map(get), p, ctx).forEach((t, j) => values.set(step.outputs[j], t));
        break;
      case "route": {
        const scores = tf.tidy(() => step.scores(get(step.inputs[0]), p, ctx)); // [S, E]
        ctx.routes.set(step.name, step.decide(scores.dataSync() as Float32Array, ctx));
        scores.dispose();
        break;
      }
      case "dispatch":
        ctx.layouts.set(
          layoutKey(step.route, step.chunk?.index),
          [Array.from(exchangedPerExpert(step, ctx.routes.get(step.route)!))],
        );
        values.set(step.output, get(step.input));
        break;
      case "combine":
        values.set(step.output, get(step.input));
    }
  }
  return values;
}

type Pending = tf.Tensor | Promise<tf.Tensor>;

/** Options of {@linkcode SegmentedRun}. */
export interface SegmentedOptions {
  /**
   * Overlap communication with compute (default true): an exchange's result
   * is awaited where it is first used. False runs standard expert
   * parallelism: every all-to-all is awaited as soon as it is issued.
   */
  overlap?: boolean;
  /** Receives the run's timed ops: compute ops, waits, collectives. */
  record?: TimedOp[];
  /**
   * The order the backward walks the steps in: the program's steps, each
   * once, every step after the consumers of its outputs (default
   * {@linkcode backwardOrder} of the program).
   */
  backward?: Step[];
}

/** A program executed in segments on one rank of an expert-parallel group. */
export class SegmentedRun {
  readonly #program: Step[];
  readonly #ctx: RunContext;
  readonly #params: ReadonlyMap<string, tf.Tensor>;
  readonly #comm: Communicator;
  readonly #tag: string;
  readonly #overlap: boolean;
  readonly #record: TimedOp[];
  readonly #backward: Step[];
  readonly #values = new Map<string, Pending>();
  readonly #used = new Map<string, string[]>();
  /** Futures not yet settled, by the exchange they wait for. */
  readonly #inFlight = new Map<Promise<tf.Tensor>, string>();

  /**
   * @param program the steps, in execution order
   * @param ctx the run's context
   * @param params this rank's parameters
   * @param comm the expert-parallel group
   * @param tag unique per run and equal on every rank: stem of the collectives' tags
   * @param opts overlap on or off, and where to record timed ops
   */
  constructor(
    program: Step[],
    ctx: RunContext,
    params: ReadonlyMap<string, tf.Tensor>,
    comm: Communicator,
    tag: string,
    opts: SegmentedOptions = {},
  ) {
    this.#program = program;
    this.#ctx = ctx;
    this.#params = params;
    this.#comm = comm;
    this.#tag = tag;
    this.#overlap = opts.overlap ?? true;
    this.#record = opts.record ?? [];
    this.#backward = opts.backward ?? backwardOrder(program);
  }

  /** Runs the forward pass; the values stay saved for {@linkcode backward}. */
  async forward(): Promise<void> {
    const lookup = lookupIn(this.#params);
    for (const step of this.#program) {
      if (step.kind === "route") {
        const [x] = await this.#await([this.#values.get(step.inputs[0])!], "fwd");
        const t0 = nowMs();
        const scores = tf.tidy(() => step.scores(x, lookup, this.#ctx)); // [S, E]
        this.#ctx.routes.set(
          step.name,
          step.decide((await scores.data()) as Float32Array, this.#ctx),
        );
        scores.dispose();
        this.#op(`${step.name}.route`, "fwd", t0);
      } else if (step.kind === "compute") {
        const inputs = await this.#await(step.inputs.map((n) => this.#values.get(n)!), "fwd");
        const t0 = nowMs();
        const used = new Set<string>();
        const record: ParamLookup = (name) => (used.add(name), lookup(name));
        const outputs = tf.tidy(() => step.run(inputs, record, this.#ctx));
        this.#op(step.name, "fwd", t0);
        this.#used.set(step.name, [...used]);
        outputs.forEach((t, j) => this.#values.set(step.outputs[j], t));
      } else {
        const [x] = await this.#await([this.#values.get(step.input)!], "fwd");
        this.#values.set(step.output, (await this.#issue(step, x, "fwd")).result);
      }
    }
  }

  /** A value of the forward pass (awaits a pending exchange). */
  value(name: string): Promise<tf.Tensor> {
    const v = this.#values.get(name);
    if (!v) return Promise.reject(new Error(`no value "${name}"`));
    return Promise.resolve(v);
  }

  /**
   * Back-propagates `seed` * d(loss) and returns the gradient of every
   * parameter this rank used. Every rank must call it (the exchanges run
   * even where a gradient is zero). Steps run in the order of
   * {@linkcode SegmentedOptions.backward}. `ready` is told each parameter's
   * gradient as soon as it is complete (every step that used the parameter
   * is back-propagated), while the backward goes on; the tensor is the one
   * returned.
   */
  async backward(
    seed: number,
    ready?: (name: string, grad: tf.Tensor) => void,
  ): Promise<Map<string, tf.Tensor>> {
    const grads = new Map<string, Pending>([["loss", tf.scalar(seed)]]);
    const paramGrads = new Map<string, tf.Tensor>();
    const accumulate = (name: string, g: Pending) => {
      const prev = grads.get(name);
      if (!prev) return grads.set(name, g);
      const sum = Promise.all([prev, g]).then(([a, b]) => sumAndDispose(a, b));
      const waitsFor = this.#inFlight.get(g as Promise<tf.Tensor>) ??
        this.#inFlight.get(prev as Promise<tf.Tensor>);
      grads.set(name, waitsFor ? this.#track(sum, waitsFor) : sum);
    };
    const take = (name: string): Pending | null => {
      const g = grads.get(name);
      grads.delete(name);
      return g ?? null;
    };
    const lookup = lookupIn(this.#params);
    const uses = new Map<string, number>();
    for (const names of this.#used.values()) {
      for (const n of names) uses.set(n, (uses.get(n) ?? 0) + 1);
    }
    /** One fewer step to back-propagate for each of `names`; tells `ready` the complete ones. */
    const usedBy = (names: string[]) => {
      for (const n of names) {
        const left = uses.get(n)! - 1;
        uses.set(n, left);
        const g = paramGrads.get(n);
        if (left === 0 && g) ready?.(n, g);
      }
    };
    for (const step of this.#backward) {
      if (step.kind === "route") continue;
      if (step.kind !== "compute") {
        const g = take(step.output);
        const [dy] = g
          ? await this.#await([g], "bwd")
          : [tf.zerosLike(await this.value(step.output))];
        const { result } = await this.#issue(step, dy, "bwd");
        dy.dispose();
        accumulate(step.input, result);
        continue;
      }
      const pending = step.outputs.map(take);
      const used = this.#used.get(step.name)!;
      if (pending.every((d) => d === null)) {
        usedBy(used);
        continue;
      }
      const dys = await this.#await(pending, "bwd");
      const inputs = await Promise.all(step.inputs.map((n) => this.value(n)));
      const t0 = nowMs();
      const xs = [...inputs, ...used.map(lookup)];
      const { value, grads: dxs } = tf.engine().gradients(
        () => {
          const outs = step.run(inputs, lookup, this.#ctx);
          return tf.addN(outs.flatMap((o, j) => dys[j] ? [tf.sum(tf.mul(o, dys[j]!))] : []));
        },
        xs,
        undefined,
        true,
      );
      value.dispose();
      dys.forEach((d) => d?.dispose());
      dxs.forEach((g, j) => {
        if (!g) return;
        if (j < inputs.length) accumulate(step.inputs[j], g);
        else {
          const name = used[j - inputs.length];
          const prev = paramGrads.get(name);
          paramGrads.set(name, prev ? sumAndDispose(prev, g) : g);
        }
      });
      this.#op(step.name, "bwd", t0);
      usedBy(used);
    }
    for (const g of grads.values()) (await g).dispose();
    return paramGrads;
  }

  /** Releases every saved value. */
  async dispose(): Promise<void> {
    const values = await Promise.all(this.#values.values());
    for (const t of values) t.dispose();
    this.#values.clear();
  }

  /** Awaits values (null stays null), recording the time spent waiting on unsettled exchanges. */
  async #await<T extends Pending | null>(
    values: T[],
    phase: "fwd" | "bwd",
  ): Promise<(tf.Tensor | (T & null))[]> {
    const waitsFor = values.map((v) => this.#inFlight.get(v as Promise<tf.Tensor>)).find((n) => n);
    const t0 = nowMs();
    const out = await Promise.all(values);
    if (waitsFor) {
      this.#record.push({ name: waitsFor, kind: "wait", phase, startMs: t0, endMs: nowMs() });
    }
    return out as (tf.Tensor | (T & null))[];
  }

  #op(name: string, phase: "fwd" | "bwd", startMs: number): void {
    this.#record.push({ name, kind: "op", phase, startMs, endMs: nowMs() });
  }

  #track(future: Promise<tf.Tensor>, name: string): Promise<tf.Tensor> {
    this.#inFlight.set(future, name);
    const settle = () => void this.#inFlight.delete(future);
    future.then(settle, settle); // a failure surfaces where the value is awaited
    return future;
  }

  /**
   * Reads `x` to the host and issues its exchange; resolves, once the
   * collective is in flight, with the received rows: a future (boxed, so
   * that awaiting the issue does not await it), or the rows themselves
   * without overlap. Dispatch forward and combine backward send
   * rows towards the experts' owners; combine forward and dispatch backward
   * send them back to their sources.
   */
  async #issue(
    step: ExchangeStep,
    x: tf.Tensor,
    phase: "fwd" | "bwd",
  ): Promise<{ result: Pending }> {
    const t0 = nowMs();
    const data = (await x.data()) as Float32Array;
    const route = this.#ctx.routes.get(step.route)!;
    const perExpert = exchangedPerExpert(step, route);
    const tag = `${this.#tag}/${step.name}/${phase}`;
    const timing: { doneAtMs?: number } = {};
    const size = this.#comm.size;
    const toExperts = (step.kind === "dispatch") === (phase === "fwd");
    const cols = x.shape[1] as number;
    const rows = toExperts
      ? rowsPerRank(perExpert, size)
      : this.#ctx.layouts.get(layoutKey(step.route, step.chunk?.index))!.map((c) =>
        c.reduce((a, b) => a + b, 0)
      );
    // wasm reads a copy of the tensor, ours to give up: the rows go to the communication
    // thread without another copy here (other backends may hand out the tensor's own array).
    const given = tf.getBackend() === "wasm";
    let future = exchangeRows(this.#comm, data, cols, rows, { tag, timing }, given);
    // In flight from here: the rows are on their way to the communication thread. (Timed
    // from before the copy into parts, a rank's own issue read as transfer overlapping
    // compute: a serial top-1 read up to a fifth of its communication hidden.)
    const startMs = nowMs();
    if (step.kind === "dispatch" && phase === "fwd") {
      const counts = exchangeCounts(this.#comm, perExpert, `${tag}/counts`);
      future = Promise.all([future, counts]).then(([r, c]) => {
        this.#ctx.layouts.set(layoutKey(step.route, step.chunk?.index), c);
        return r;
      });
    }
    const bytes = 4 * cols * rows.reduce((s, n, j) => s + (j === this.#comm.rank ? 0 : n), 0);
    future = future.then((r) => {
      // Not before its issue: the exchange can complete on the communication thread before
      // this thread reads the clock after posting it (and the two clocks agree only to
      // about 0.1 ms).
      const endMs = Math.max(startMs, timing.doneAtMs ?? nowMs());
      this.#record.push({ name: step.name, kind: "comm", phase, startMs, endMs, bytes });
      return r;
    });
    this.#track(future, step.name);
    this.#op(`${step.name}.send`, phase, t0);
    if (!this.#overlap) return { result: (await this.#await([future], phase))[0] };
    return { result: future };
  }
}

function sumAndDispose(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const s = tf.add(a, b);
  a.dispose();
  b.dispose();
  return s;
}
