/**
 * The rates of the active tfjs backend, measured: what the simulator's
 * `here` preset (`hardware.ts`) computes at, and the denominator of a
 * training run's model FLOP utilisation (MFU).
 *
 * - matrix multiply: `[512, 256] x [256, 1024]`, the shape of this project's
 *   MLP projections at its default sizes;
 * - memory: an element-wise kernel over 1 M floats (one read, one write);
 * - tanh: the same kernel through tanh (GELU's), less the memory's time;
 * - per kernel: an element-wise kernel over 16 floats (all dispatch);
 * - host reads: `dataSync` of 1 M floats and of 16.
 *
 * Each figure is a low quantile of repeated timings, after a warm-up (see
 * `timeIt`): the device's rate, not its share of a busy machine.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { DeviceRates } from "./hardware.ts";

/**
 * Rates of the active backend, as measured: the {@linkcode DeviceRates} a
 * microbenchmark can read (matmul `[512, 256] x [256, 1024]`, attention's
 * `[32, 64, 64] x [32, 64, 64]^T`, `mul` over `[512, 1024]` counting a read
 * and a write, 512 rows of 256 gathered and `[8, 64, 4, 64]` transposed,
 * tanh beyond its bytes, an empty kernel, reads to the host).
 */
export interface MeasuredRates extends
  Pick<
    DeviceRates,
    | "matmulFlopsPerS"
    | "batchedFlopsPerS"
    | "memoryBytesPerS"
    | "copyBytesPerS"
    | "tanhPerS"
    | "kernelS"
    | "hostBytesPerS"
    | "hostReadS"
  > {
  /** The backend measured. */
  backend: string;
}

/** Options of {@linkcode measureDeviceRates}. */
export interface MeasureOptions {
  /** Seconds to spend on each figure, about (default 0.5). */
  secondsEach?: number;
}

/**
 * Seconds of `fn`, a low quantile (the 10th percentile) of repetitions
 * filling about `seconds`, after two warm-up calls: on a shared machine a
 * repetition that lost its core to another process is slower by a time
 * slice, so the low quantile is the device's rate, not its share of a busy
 * machine.
 */
function timeIt(fn: () => void, seconds: number): number {
  fn();
  fn();
  const times: number[] = [];
  const until = performance.now() + seconds * 1e3;
  while (times.length < 20 || (performance.now() < until && times.length < 10_000)) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1e3);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 10)];
}

/**
 * Measures the active backend (call `setupBackend` first), on the shapes of
 * this project's default model (`[512, 256]` activations, 4 heads of 64).
 *
 * @example
 * ```ts ignore
 * import { setupBackend } from "./backend.ts";
 * import { measureDeviceRates } from "./device_rates.ts";
 * await setupBackend("wasm");
 * const rates = measureDeviceRates({ secondsEach: 0.2 });
 * console.log(rates.matmulFlopsPerS / 1e9, "GFLOP/s");
 * ```
 */
export function measureDeviceRates(opts: MeasureOptions = {}): MeasuredRates {
  const seconds = opts.secondsEach ?? 0.5;
  const S = 512, C = 256, H = 1024;
  const x = tf.randomNormal([S, C]), w = tf.randomNormal([C, H]);
  const h = tf.randomNormal([S, H]);
  const q = tf.randomNormal([32, 64, 64]);
  const x4 = tf.randomNormal([8, 64, 4, 64]);
  const table = tf.randomNormal([256, C]);
  const idx = tf.tensor1d(Array.from({ length: S }, (_, i) => (i * 7) % 256), "int32");
  const small = tf.randomNormal([16]);
  try {
    /** `f`'s output read back: one element of it (a reshape and a slice: one more tiny kernel). */
    const once = (f: () => tf.Tensor) => () => {
      const y = f();
      const first = tf.slice(tf.reshape(y, [-1]), [0], [1]);
      first.dataSync();
      tf.dispose([y, first]);
    };
    const chain = (len: number) => () => {
      let y = tf.neg(small);
      for (let i = 1; i < len; i++) {
        const next = tf.neg(y);
        y.dispose();
        y = next;
      }
      y.dataSync();
      y.dispose();
    };
    const kernels = 50;
    const kernelS = Math.max(
      0,
      (timeIt(chain(kernels), seconds) - timeIt(chain(1), seconds)) / (kernels - 1),
    );
    const empty = timeIt(once(() => tf.neg(small)), seconds); // tiny kernels and a tiny read
    const at = (f: () => tf.Tensor) => Math.max(1e-9, timeIt(once(f), seconds) - empty);
    const matmul = at(() => tf.matMul(x, w));
    const batched = at(() => tf.matMul(q, q, false, true));
    const memory = at(() => tf.mul(h, h));
    const gather = at(() => tf.gather(table, idx));
    const transpose = at(() => tf.transpose(x4, [0, 2, 1, 3]));
    const tanh = at(() => tf.tanh(h));
    const hostBig = timeIt(() => void h.dataSync(), seconds);
    const hostSmall = timeIt(() => void small.dataSync(), seconds);
    const bytes = 4 * S * H;
    const memoryBytesPerS = (2 * bytes) / memory;
    return {
      backend: tf.getBackend(),
      matmulFlopsPerS: (2 * S * C * H) / matmul,
      batchedFlopsPerS: (2 * 32 * 64 * 64 * 64) / batched,
      memoryBytesPerS,
      copyBytesPerS: (2 * 4 * (S * C + 8 * 64 * 4 * 64)) / (gather + transpose),
      tanhPerS: (S * H) / Math.max(1e-9, tanh - memory / 1.5),
      kernelS,
      hostBytesPerS: bytes / Math.max(1e-9, hostBig - hostSmall),
      hostReadS: hostSmall,
    };
  } finally {
    tf.dispose([x, w, h, q, x4, table, idx, small]);
  }
}

/**
 * The active backend's matrix-multiply rate alone, FLOP/s, on
 * `[512, 256] x [256, 1024]` (the denominator of a training run's MFU);
 * about `seconds` of timing.
 */
export function measureMatmulRate(seconds = 0.3): number {
  const [S, C, H] = [512, 256, 1024];
  const x = tf.randomNormal([S, C]), w = tf.randomNormal([C, H]);
  try {
    const run = (f: () => tf.Tensor) => () => {
      const y = f();
      const first = tf.slice(tf.reshape(y, [-1]), [0], [1]);
      first.dataSync();
      tf.dispose([y, first]);
    };
    const empty = timeIt(run(() => tf.neg(tf.slice(x, [0, 0], [1, 1]))), seconds / 3);
    return (2 * S * C * H) / Math.max(1e-9, timeIt(run(() => tf.matMul(x, w)), seconds) - empty);
  } finally {
    tf.dispose([x, w]);
  }
}
