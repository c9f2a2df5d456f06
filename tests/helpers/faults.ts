/**
 * Shared pieces of the fault-injection tests: a very small training run, its
 * metric lines, the losses of a clean local run, the train CLI as a child
 * process, and finding and killing that child's rank processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { trainWithArgs } from "../../cli/train.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * Asserts that a run logged the same steps as a clean one, with losses within
 * 1e-5 (timing-driven schedule choices may reorder float sums: no bit equality).
 */
export function assertSameCurve(
  got: Record<string, number>[],
  clean: Record<string, number>[],
): void {
  assert.deepEqual(got.map((m) => m.step), clean.map((m) => m.step));
  for (const [i, m] of got.entries()) {
    assert.ok(
      Math.abs(m.loss - clean[i].loss) < 1e-5,
      `step ${m.step}: ${m.loss} vs ${clean[i].loss}`,
    );
  }
}

/** A very small run of `steps` steps: 4 windows of 16 bytes a step, no validation passes. */
export function smallRun(steps: number): string[] {
  return ["--steps", String(steps), "--batch", "4", "--seq", "16", "--eval-every", "0"];
}

/** The lines of `DIR/metrics.jsonl`. */
export async function metricLines(dir: string): Promise<Record<string, number>[]> {
  const text = await Deno.readTextFile(`${dir}/metrics.jsonl`);
  return text.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

const cleanLosses = new Map<string, Promise<number[]>>();

/** Training losses of a clean run of `flags` on local ranks, by step (computed once per flags). */
export function localLosses(flags: string[]): Promise<number[]> {
  const key = JSON.stringify(flags);
  let losses = cleanLosses.get(key);
  if (!losses) {
    losses = (async () => {
      const tmp = await Deno.makeTempDir({ prefix: "clean_run_" });
      try {
        await trainWithArgs([...flags, "--out", tmp], { verbose: false });
        return (await metricLines(tmp)).map((m) => m.loss);
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    })();
    cleanLosses.set(key, losses);
  }
  return losses;
}

/** `deno task train` running as a child process. */
export interface TrainChild {
  /** Process id of the CLI. */
  pid: number;
  /** Its exit code and everything it printed, once it ends. */
  done: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Starts `cli/train.ts ARGS` in the project root. */
export function trainCliChild(args: string[]): TrainChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/train.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = new TextDecoder();
  const done = child.output().then(({ code, stdout, stderr }) => ({
    code,
    stdout: text.decode(stdout),
    stderr: text.decode(stderr),
  }));
  return { pid: child.pid, done };
}

/** Process ids of the actor processes started under `pid` (the driver's own agent). */
export async function rankProcesses(pid: number): Promise<number[]> {
  let children: string;
  try {
    children = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`);
  } catch {
    return [];
  }
  const ranks: number[] = [];
  for (const c of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
    const cmdline = await Deno.readTextFile(`/proc/${c}/cmdline`).catch(() => "");
    if (cmdline.includes("process_main.ts")) ranks.push(c);
  }
  return ranks;
}

/** Waits until `DIR/metrics.jsonl` holds at least `steps` lines (or `child` ends). */
export async function waitForSteps(dir: string, steps: number, child: TrainChild): Promise<void> {
  let ended = false;
  child.done.finally(() => ended = true);
  while (!ended) {
    const lines = await metricLines(dir).catch(() => []);
    if (lines.length >= steps) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the run ended before step ${steps}: ${(await child.done).stderr}`);
}

/**
 * SIGKILLs `victim` (default: one rank process of `child`) `delayMs` after
 * `child`'s run has logged `steps` steps; returns when it was killed.
 */
export async function killAfterSteps(
  child: TrainChild,
  dir: string,
  steps: number,
  { victim, delayMs = 0 }: { victim?: number; delayMs?: number } = {},
): Promise<number> {
  await waitForSteps(dir, steps, child);
  await new Promise((r) => setTimeout(r, delayMs));
  const pid = victim ?? (await rankProcesses(child.pid))[0];
  if (pid === undefined) throw new Error("no rank process found under the CLI");
  Deno.kill(pid, "SIGKILL");
  return Date.now();
}
