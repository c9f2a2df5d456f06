/**
 * What the examples must print, checked the same way wherever they run:
 * inside the repository, or copied into an outside project.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { RunResult } from "./deno_run.ts";

/** The word counts of `examples/actors.ts`'s five texts, and their total. */
const WORDS = [12, 11, 7, 11, 5];

/** `examples/actors.ts`: one line per text (in any order), then the total. */
export function assertActorsOutput(run: RunResult): void {
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split("\n");
  assert.equal(lines.length, WORDS.length + 1, run.stdout);
  const counts = lines.slice(0, -1).map((l) => Number(/^(\d+) words: /.exec(l)?.[1]));
  assert.deepEqual(counts.toSorted((a, b) => a - b), WORDS.toSorted((a, b) => a - b));
  assert.equal(lines.at(-1), `total ${WORDS.reduce((a, b) => a + b)} words`);
}

/** What `examples/train_text.ts` prints. */
export interface TrainTextResult {
  /** Loss of the first step. */
  firstLoss: number;
  /** Validation loss at the half-way checkpoint. */
  halfValLoss: number;
  /** Final validation loss (2 ranks). */
  valLoss: number;
  /** The final checkpoint evaluated again on 1 rank. */
  reloadedValLoss: number;
  /** The final checkpoint's directory. */
  checkpoint: string;
}

/**
 * `examples/train_text.ts`: the loss falls, the resumed half improves on the
 * first, and the checkpoint reloads (re-sharded onto 1 rank) to the same
 * validation loss.
 */
export function assertTrainTextOutput(run: RunResult, steps: number): TrainTextResult {
  assert.equal(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as TrainTextResult;
  assert.ok(r.valLoss < r.firstLoss - 0.5, `the loss falls: ${JSON.stringify(r)}`);
  assert.ok(
    r.valLoss < r.halfValLoss,
    `training on from the checkpoint helps: ${JSON.stringify(r)}`,
  );
  assert.ok(
    Math.abs(r.reloadedValLoss - r.valLoss) < 1e-4,
    `reloaded on 1 rank: ${r.reloadedValLoss} vs ${r.valLoss}`,
  );
  assert.match(r.checkpoint, new RegExp(`ckpt-0*${steps}$`));
  return r;
}

/** What `examples/moe_mixer.ts` prints. */
export interface MixerResult {
  /** Loss of the first step. */
  firstLoss: number;
  /** Loss of the last step. */
  loss: number;
  /** Median measured share of the MoE layers' communication hidden behind compute. */
  hiddenFraction: number;
}

/**
 * `examples/moe_mixer.ts`: the copy task's loss falls on 2 ranks, and the
 * hidden fraction was measured (a share, whatever its value on a busy machine).
 */
export function assertMixerOutput(run: RunResult): MixerResult {
  assert.equal(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as MixerResult;
  assert.ok(r.loss < r.firstLoss - 1, `the loss falls: ${JSON.stringify(r)}`);
  assert.ok(r.hiddenFraction >= 0 && r.hiddenFraction <= 1, `hidden fraction ${r.hiddenFraction}`);
  return r;
}
