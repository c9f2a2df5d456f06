/**
 * The step schedule of the overlap: pure reorderings of a {@linkcode Step}
 * program within its data dependencies: the overlapping strategy of the
 * ScMoE paper (Cai et al., "Shortcut-connected Expert Parallelism for
 * Accelerating Mixture-of-Experts", arXiv:2404.05019).
 *
 * - Each gate use's dispatch stays where the serial program has it: right
 *   after its tap and routing exist (as early as possible).
 * - Its expert computation (with the combine issued right after it) moves
 *   into slot K of its overlap window: after the window's first K backbone
 *   ops. The window is the backbone ops between the dispatch and the block's
 *   output step (ScMoE Pos-2: `MLP_l, Attn_{l+1}, SE`).
 * - The combine result is consumed by the output step, right before the
 *   residual add (as late as possible).
 * - The backward walks the steps in reverse, issuing each gradient exchange
 *   as soon as every consumer of its forward output is back-propagated, so
 *   it overlaps the backward of the window's ops ({@linkcode backwardOrder}).
 *
 * @module
 */

import type { BlockLayout } from "./overlap_report.ts";
import type { ExchangeStep, Step } from "./program.ts";

/** One gate use's overlap window. */
export interface GateWindow {
  /** The gate use (its route step's name). */
  gate: string;
  /** Its MoE block. */
  block: number;
  /** Names of the window's backbone ops `COMP_1..COMP_n`, in program order. */
  ops: string[];
}

function isExchange(s: Step): s is ExchangeStep {
  return s.kind === "dispatch" || s.kind === "combine";
}

/** The values a step reads. */
function inputsOf(s: Step): string[] {
  return isExchange(s) ? [s.input] : s.inputs;
}

/** The values a step makes (a route step makes a route, not a value). */
function outputsOf(s: Step): string[] {
  if (isExchange(s)) return [s.output];
  return s.kind === "compute" ? s.outputs : [];
}

/** Whether `s` belongs to gate use `gate`'s chain (route, gate, exchanges, experts, split/merge). */
function inChain(s: Step, gate: string): boolean {
  if (isExchange(s)) return s.route === gate;
  return s.name === gate || s.name.startsWith(`${gate}.`);
}

function blockOfGate(gate: string): number {
  return Number(/^blocks\.(\d+)\./.exec(gate)?.[1]);
}

/** The index of the step that consumes gate `gate`'s combined rows (its block's output step). */
function outputIndex(program: Step[], gate: string): number {
  return program.findIndex((s) => s.kind === "compute" && s.inputs.includes(`${gate}:back`));
}

/**
 * Every gate use's overlap window in a program in serial order (as
 * {@linkcode buildProgram} makes it, pipelined or not).
 *
 * @example
 * ```ts
 * import { gateWindows } from "./schedule.ts";
 * import { buildProgram } from "./program.ts";
 * import { resolveConfig } from "./config.ts";
 * gateWindows(buildProgram(resolveConfig({ variant: "scmoe", pos: 2 }), true))[0].ops;
 * // ["blocks.0.mlp", "blocks.1.attn", "blocks.1.moe.shared"]
 * ```
 */
export function gateWindows(program: Step[]): GateWindow[] {
  const gates = program.filter((s) => s.kind === "route").map((s) => s.name);
  return gates.map((gate) => {
    const from = program.findIndex((s) => s.kind === "compute" && s.name === gate);
    const to = outputIndex(program, gate);
    const ops = program.slice(from + 1, to)
      .filter((s) => s.kind === "compute" && !gates.some((g) => inChain(s, g)))
      .map((s) => s.name);
    return { gate, block: blockOfGate(gate), ops };
  });
}

/**
 * Moves each gate use's expert computation into slot `slots.get(gate)` of
 * its window (clamped to `0..ops.length`; default 0) and a pipelined gate's
 * merge right before the output step. `program` must be in serial order.
 *
 * @example
 * ```ts
 * import { gateWindows, scheduleProgram } from "./schedule.ts";
 * import { buildProgram } from "./program.ts";
 * import { resolveConfig } from "./config.ts";
 * const serial = buildProgram(resolveConfig({ variant: "scmoe", pos: 2 }), true);
 * const steps = scheduleProgram(serial, gateWindows(serial), new Map([["blocks.1.moe.gate", 2]]));
 * // ... blocks.1.attn, blocks.1.moe.gate.experts, blocks.1.moe.gate.combine, blocks.1.moe.shared ...
 * ```
 */
export function scheduleProgram(
  program: Step[],
  windows: GateWindow[],
  slots: ReadonlyMap<string, number>,
): Step[] {
  let order = [...program];
  for (const { gate, ops } of windows) {
    if (ops.length === 0) continue; // nothing to overlap: the chain stays as it is
    const slot = Math.max(0, Math.min(ops.length, Math.round(slots.get(gate) ?? 0)));
    const chain = order.filter((s) => s.kind !== "route" && s.name !== gate && inChain(s, gate));
    const firstExperts = chain.findIndex((s) => s.name.startsWith(`${gate}.experts`));
    const merge = chain.filter((s) => s.name === `${gate}.merge`);
    const unit = chain.slice(firstExperts).filter((s) => !merge.includes(s));
    order = order.filter((s) => !unit.includes(s) && !merge.includes(s));
    const output = order[outputIndex(order, gate)];
    const anchor = slot < ops.length ? order.find((s) => s.name === ops[slot])! : output;
    order.splice(order.indexOf(anchor), 0, ...unit);
    order.splice(order.indexOf(output), 0, ...merge);
  }
  assertDependencies(order);
  return order;
}

/** Throws unless every step's inputs are made by an earlier step. */
export function assertDependencies(steps: Step[]): void {
  const made = new Set<string>();
  const routed = new Set<string>();
  for (const s of steps) {
    for (const v of inputsOf(s)) {
      if (!made.has(v)) throw new Error(`step "${s.name}" reads "${v}" before it is made`);
    }
    if (isExchange(s) && !routed.has(s.route)) {
      throw new Error(`step "${s.name}" runs before route "${s.route}"`);
    }
    if (s.kind === "route") routed.add(s.name);
    for (const v of outputsOf(s)) made.add(v);
  }
}

/**
 * The backward order of a forward order: reverse, except that each exchange
 * comes right after the last of its output's consumers (so its gradient
 * all-to-all is issued as soon as its gradient is complete, and overlaps
 * the backward of the steps that follow). Ready exchanges keep reverse
 * program order (a pipelined gate's last chunk goes first). Route steps have
 * no backward and are left out.
 */
export function backwardOrder(steps: Step[]): Step[] {
  const rev = steps.filter((s) => s.kind !== "route").reverse();
  const remaining = new Map<string, number>();
  for (const s of rev) for (const v of inputsOf(s)) remaining.set(v, (remaining.get(v) ?? 0) + 1);
  const out: Step[] = [];
  const done = new Set<Step>();
  const emit = (s: Step) => {
    out.push(s);
    done.add(s);
    for (const v of inputsOf(s)) remaining.set(v, remaining.get(v)! - 1);
  };
  for (const s of rev) {
    if (done.has(s)) continue;
    emit(s);
    for (const x of rev) {
      if (!done.has(x) && isExchange(x) && (remaining.get(x.output) ?? 0) === 0) emit(x);
    }
  }
  return out;
}

/**
 * Which MoE block each step of a scheduled program belongs to (every step
 * from the block's first route to its output step; a route step's op is
 * named `<gate>.route`, an exchange's issue `<exchange>.send`) and each
 * block's window ops, for `blockFigures`.
 */
export function blockLayout(steps: Step[], windows: GateWindow[]): BlockLayout {
  const blockOf = new Map<string, number>();
  const windowOps = new Map<number, Set<string>>();
  for (const block of new Set(windows.map((w) => w.block))) {
    const gates = windows.filter((w) => w.block === block);
    const from = Math.min(
      ...gates.map((w) => steps.findIndex((s) => s.kind === "route" && s.name === w.gate)),
    );
    const to = outputIndex(steps, gates[0].gate);
    for (const s of steps.slice(from, to + 1)) {
      blockOf.set(s.kind === "route" ? `${s.name}.route` : s.name, block);
      if (isExchange(s)) blockOf.set(`${s.name}.send`, block);
    }
    windowOps.set(block, new Set(gates.flatMap((w) => w.ops)));
  }
  return { blockOf, windowOps };
}
