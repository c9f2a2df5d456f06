/**
 * The dense-gradient all-reduce in buckets, as data-parallel training does
 * it (PyTorch DDP): dense parameters are grouped into buckets (two per block,
 * one for the embedding, positions and final norm), and a bucket's all-reduce
 * is issued as soon as the backward has completed every gradient in it, so
 * that it overlaps the rest of the backward; the step awaits them all at the
 * end. Each bucket's elements are summed exactly as one all-reduce of all
 * dense gradients would sum them.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Communicator } from "../collectives/types.ts";
import { nowMs } from "../collectives/link.ts";
import type { TimedOp } from "./overlap_report.ts";
import { readsSynchronously } from "./backend.ts";

/**
 * The bucket of a dense parameter: `blocks.<i>.attn` for a block's attention
 * and first norm, `blocks.<i>.shared` for an MoE layer's shared expert,
 * `blocks.<i>` for the rest of the block (its MLP or the MoE layer's other
 * dense parts), `embed` for everything else. The backward completes a
 * block's MLP before its attention, so the MLP's all-reduce (two thirds of a
 * dense block's parameters) overlaps the attention's backward instead of
 * waiting for the whole block. The shared expert's gradients are complete
 * at the start of its block's backward, but ScMoE's gate (in `blocks.<i>`)
 * reads the preceding block's representation and finishes only after that
 * block's MLP: in one bucket, the shared expert's all-reduce (the MoE
 * layer's largest) would wait for it and land in the backward's tail.
 */
export function bucketOf(name: string): string {
  const attn = /^(blocks\.\d+)\.(ln1|attn)\./.exec(name);
  if (attn) return `${attn[1]}.attn`;
  const shared = /^(blocks\.\d+)\.moe\.shared\./.exec(name);
  if (shared) return `${shared[1]}.shared`;
  return /^blocks\.\d+/.exec(name)?.[0] ?? "embed";
}

/**
 * One step's dense-gradient all-reduce: {@linkcode ready} as gradients
 * complete, {@linkcode finish} at the end of the backward.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { GradientBuckets } from "./grad_sync.ts";
 * import { createMemoryGroup } from "../collectives/memory.ts";
 * const [comm] = createMemoryGroup(1);
 * const grads = new Map([["wte", tf.ones([2])], ["blocks.0.ln1.g", tf.ones([2])]]);
 * const buckets = new GradientBuckets([...grads.keys()], comm, "step/grads", []);
 * buckets.ready("blocks.0.ln1.g", grads.get("blocks.0.ln1.g")!); // its bucket is issued now
 * await buckets.finish(grads); // the embed bucket goes now; grads hold the sums
 * ```
 */
export class GradientBuckets {
  readonly #members = new Map<string, string[]>();
  readonly #got = new Map<string, Map<string, tf.Tensor>>();
  readonly #sums = new Map<string, Promise<Float32Array>>();
  readonly #comm: Communicator;
  readonly #tag: string;
  readonly #record: TimedOp[];

  /**
   * Buckets one step's dense gradients.
   *
   * @param dense the dense parameters' names, equal on every rank
   * @param comm the group to sum over
   * @param tag unique per step and equal on every rank
   * @param record receives each bucket's all-reduce (`grads.allreduce.<bucket>`) and the wait on them
   */
  constructor(dense: string[], comm: Communicator, tag: string, record: TimedOp[]) {
    for (const n of dense) {
      const b = bucketOf(n);
      this.#members.set(b, [...(this.#members.get(b) ?? []), n]);
    }
    this.#comm = comm;
    this.#tag = tag;
    this.#record = record;
  }

  /** Parameter `name`'s gradient is complete; issues its bucket's all-reduce once the bucket is. */
  ready(name: string, grad: tf.Tensor): void {
    const bucket = bucketOf(name);
    const members = this.#members.get(bucket);
    if (!members?.includes(name) || this.#sums.has(bucket)) return;
    const got = this.#got.get(bucket) ?? new Map<string, tf.Tensor>();
    this.#got.set(bucket, got.set(name, grad));
    if (got.size === members.length) this.#issue(bucket, got);
  }

  /**
   * Issues the buckets not issued yet (gradients from `grads`), awaits every
   * all-reduce and replaces each dense gradient in `grads` by its sum over
   * the group (disposing the local one).
   */
  async finish(grads: Map<string, tf.Tensor>): Promise<void> {
    for (const [bucket, members] of this.#members) {
      if (!this.#sums.has(bucket)) {
        this.#issue(bucket, new Map(members.map((n) => [n, grads.get(n)!])));
      }
    }
    const t0 = nowMs();
    const sums = await Promise.all([...this.#members.keys()].map((b) => this.#sums.get(b)!));
    const endMs = nowMs();
    this.#record.push({ name: "grads.allreduce", kind: "wait", phase: "bwd", startMs: t0, endMs });
    [...this.#members.values()].forEach((members, j) => {
      let offset = 0;
      for (const n of members) {
        const g = grads.get(n)!;
        grads.set(n, tf.tensor(sums[j].subarray(offset, offset += g.size), g.shape));
        g.dispose();
      }
    });
  }

  #issue(bucket: string, got: Map<string, tf.Tensor>): void {
    const members = this.#members.get(bucket)!;
    // Read at once where the backend can (timed as the op `grads.bucket.<bucket>`): read
    // later, in promise callbacks, the copies ran whenever the thread next awaited, most
    // often inside a wait on an expert all-to-all's result, where they read as hand-off
    // (3 to 10 ms per backward exchange of ScMoE Pos-2 here, 0.4 ms without them).
    const sum = readsSynchronously()
      ? this.#send(bucket, this.#flattenNow(bucket, members.map((n) => got.get(n)!)))
      : Promise.all(members.map((n) => got.get(n)!.data() as Promise<Float32Array>))
        .then((arrays) => {
          const flat = new Float32Array(arrays.reduce((s, a) => s + a.length, 0));
          let offset = 0;
          for (const a of arrays) flat.set(a, (offset += a.length) - a.length);
          return this.#send(bucket, flat);
        });
    // A step that fails before `finish` never awaits its buckets: their rejections
    // (e.g. a peer's death) must not surface as unhandled and end the rank.
    sum.catch(() => {});
    this.#sums.set(bucket, sum);
  }

  /** Issues the all-reduce of a bucket's gradients `flat` (transferred) and times it. */
  #send(bucket: string, flat: Float32Array): Promise<Float32Array> {
    const timing: { doneAtMs?: number } = {};
    // Counted before the call, which may transfer (detach) `flat`.
    const bytes = 4 * flat.length * 2 * (this.#comm.size - 1) / this.#comm.size;
    const startMs = nowMs();
    return this.#comm.allreduce(flat, "sum", { tag: `${this.#tag}/${bucket}`, timing })
      .then((summed) => {
        // Not before its issue: the exchange can complete on the communication thread before
        // this thread reads the clock after posting it (and the two clocks agree only to
        // about 0.1 ms).
        const endMs = Math.max(startMs, timing.doneAtMs ?? nowMs());
        const name = `grads.allreduce.${bucket}`;
        this.#record.push({ name, kind: "comm", phase: "bwd", startMs, endMs, bytes });
        return summed;
      });
  }

  /** The bucket's gradients as one array, read synchronously, timed as an op. */
  #flattenNow(bucket: string, grads: tf.Tensor[]): Float32Array {
    const startMs = nowMs();
    const flat = tf.tidy(() => tf.concat(grads.map((g) => g.reshape([-1]))));
    const data = flat.dataSync() as Float32Array;
    // wasm reads a copy; the cpu backend hands out the tensor's own array.
    const own = tf.getBackend() === "wasm" ? data : data.slice();
    flat.dispose();
    const name = `grads.bucket.${bucket}`;
    this.#record.push({ name, kind: "op", phase: "bwd", startMs, endMs: nowMs() });
    return own;
  }
}
