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

/** Rates of the active backend. */
export interface MeasuredRates {
  /** The backend measured. */
  backend: string;
  /** Matrix-multiply FLOP/s. */
  matmulFlopsPerS: number;
  /** Bytes/s an element-wise kernel moves. */
  memoryBytesPerS: number;
  /** Elements/s through tanh beyond the bytes it moves (GELU's tanh: slow without a vector tanh). */
  tanhPerS: number;
  /** Seconds of a kernel that does (almost) nothing. */
  kernelS: number;
  /** Bytes/s of a read back to the host. */
  hostBytesPerS: number;
  /** Seconds of a read of (almost) nothing back to the host. */
  hostReadS: number;
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
 * slice, so the low quantile is the device's rate and the median its share
 * of the cores besides.
 */
function timeIt(fn: () => void, seconds: number): number {
  fn();
  fn();
  const times: number[] = [];
  const until = performance.now() + seconds * 1e3;
  while (times.length < 10 || (performance.now() < until && times.length < 10_000)) {
    const t0 = performance.now();
    fn();
    times.push((performance.now() - t0) / 1e3);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 10)];
}

/**
 * Measures the active backend (call `setupBackend` first).
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
  const [m, k, n] = [512, 256, 1024];
  const a = tf.randomNormal([m, k]), b = tf.randomNormal([k, n]);
  const big = tf.randomNormal([1 << 20]), small = tf.randomNormal([16]);
  try {
    /** `f`'s output read back: one element of it (a slice: one more tiny kernel). */
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
    const empty = timeIt(once(() => tf.neg(small)), seconds); // two tiny kernels and a tiny read
    const bigBytes = 4 * (1 << 20);
    const at = (f: () => tf.Tensor) => Math.max(1e-9, timeIt(once(f), seconds) - empty);
    const matmul = at(() => tf.matMul(a, b));
    const memory = at(() => tf.neg(big));
    const tanh = at(() => tf.tanh(big));
    const hostBig = timeIt(() => void big.dataSync(), seconds);
    const hostSmall = timeIt(() => void small.dataSync(), seconds);
    const memoryBytesPerS = (2 * bigBytes) / memory;
    return {
      backend: tf.getBackend(),
      matmulFlopsPerS: (2 * m * k * n) / matmul,
      memoryBytesPerS,
      tanhPerS: (1 << 20) / Math.max(1e-9, tanh - memory),
      kernelS,
      hostBytesPerS: bigBytes / Math.max(1e-9, hostBig - hostSmall),
      hostReadS: hostSmall,
    };
  } finally {
    tf.dispose([a, b, big, small]);
  }
}
