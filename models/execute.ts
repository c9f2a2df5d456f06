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
 *   back along the route it came. Steps run serially in program order.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Communicator } from "../collectives/types.ts";
import { exchangeCounts, exchangeRows, rowsPerRank } from "./exchange.ts";
import type { ParamLookup } from "./layers.ts";
import type { ExchangeStep, RunContext, Step } from "./program.ts";

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
        ctx.layouts.set(step.route, [Array.from(ctx.routes.get(step.route)!.perExpert)]);
        values.set(step.output, get(step.input));
        break;
      case "combine":
        values.set(step.output, get(step.input));
    }
  }
  return values;
}

type Pending = tf.Tensor | Promise<tf.Tensor>;

/** A program executed in segments on one rank of an expert-parallel group. */
export class SegmentedRun {
  readonly #program: Step[];
  readonly #ctx: RunContext;
  readonly #params: ReadonlyMap<string, tf.Tensor>;
  readonly #comm: Communicator;
  readonly #tag: string;
  readonly #values = new Map<string, Pending>();
  readonly #used = new Map<string, string[]>();

  /**
   * @param program the steps, in execution order
   * @param ctx the run's context
   * @param params this rank's parameters
   * @param comm the expert-parallel group
   * @param tag unique per run and equal on every rank: stem of the collectives' tags
   */
  constructor(
    program: Step[],
    ctx: RunContext,
    params: ReadonlyMap<string, tf.Tensor>,
    comm: Communicator,
    tag: string,
  ) {
    this.#program = program;
    this.#ctx = ctx;
    this.#params = params;
    this.#comm = comm;
    this.#tag = tag;
  }

  /** Runs the forward pass; the values stay saved for {@linkcode backward}. */
  async forward(): Promise<void> {
    const lookup = lookupIn(this.#params);
    for (const step of this.#program) {
      if (step.kind === "route") {
        const x = await this.value(step.inputs[0]);
        const scores = tf.tidy(() => step.scores(x, lookup, this.#ctx)); // [S, E]
        this.#ctx.routes.set(
          step.name,
          step.decide((await scores.data()) as Float32Array, this.#ctx),
        );
        scores.dispose();
      } else if (step.kind === "compute") {
        const inputs = await Promise.all(step.inputs.map((n) => this.value(n)));
        const used = new Set<string>();
        const record: ParamLookup = (name) => (used.add(name), lookup(name));
        const outputs = tf.tidy(() => step.run(inputs, record, this.#ctx));
        this.#used.set(step.name, [...used]);
        outputs.forEach((t, j) => this.#values.set(step.outputs[j], t));
      } else {
        this.#values.set(step.output, this.#exchange(step, await this.value(step.input), "fwd"));
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
   * even where a gradient is zero).
   */
  async backward(seed: number): Promise<Map<string, tf.Tensor>> {
    const grads = new Map<string, Pending>([["loss", tf.scalar(seed)]]);
    const paramGrads = new Map<string, tf.Tensor>();
    const accumulate = (map: Map<string, Pending>, name: string, g: Pending) => {
      const prev = map.get(name);
      map.set(name, prev ? Promise.all([prev, g]).then(([a, b]) => sumAndDispose(a, b)) : g);
    };
    const take = async (name: string) => {
      const g = grads.get(name);
      grads.delete(name);
      return g ? await g : null;
    };
    const lookup = lookupIn(this.#params);
    for (const step of [...this.#program].reverse()) {
      if (step.kind === "route") continue;
      if (step.kind !== "compute") {
        const dy = (await take(step.output)) ?? tf.zerosLike(await this.value(step.output));
        accumulate(grads, step.input, this.#exchange(step, dy, "bwd").finally(() => dy.dispose()));
        continue;
      }
      const dys = await Promise.all(step.outputs.map(take));
      if (dys.every((d) => d === null)) continue;
      const inputs = await Promise.all(step.inputs.map((n) => this.value(n)));
      const used = this.#used.get(step.name)!;
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
        if (j < inputs.length) accumulate(grads, step.inputs[j], g);
        else {
          const name = used[j - inputs.length];
          const prev = paramGrads.get(name);
          paramGrads.set(name, prev ? sumAndDispose(prev, g) : g);
        }
      });
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

  /**
   * Dispatch forward and combine backward send rows towards the experts'
   * owners; combine forward and dispatch backward send them back to their
   * sources.
   */
  #exchange(step: ExchangeStep, x: tf.Tensor, phase: "fwd" | "bwd"): Promise<tf.Tensor> {
    const future = this.#send(step, x, phase);
    future.catch(() => {}); // a failure surfaces where the value is awaited, not as an unhandled rejection
    return future;
  }

  async #send(step: ExchangeStep, x: tf.Tensor, phase: "fwd" | "bwd"): Promise<tf.Tensor> {
    const route = this.#ctx.routes.get(step.route)!;
    const tag = `${this.#tag}/${step.name}/${phase}`;
    const toExperts = (step.kind === "dispatch") === (phase === "fwd");
    if (step.kind === "dispatch" && phase === "fwd") {
      const [rows, counts] = await Promise.all([
        exchangeRows(this.#comm, x, rowsPerRank(route.perExpert, this.#comm.size), tag),
        exchangeCounts(this.#comm, route.perExpert, `${tag}/counts`),
      ]);
      this.#ctx.layouts.set(step.route, counts);
      return rows;
    }
    const rows = toExperts
      ? rowsPerRank(route.perExpert, this.#comm.size)
      : this.#ctx.layouts.get(step.route)!.map((c) => c.reduce((a, b) => a + b, 0));
    return exchangeRows(this.#comm, x, rows, tag);
  }
}

function sumAndDispose(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const s = tf.add(a, b);
  a.dispose();
  b.dispose();
  return s;
}
