/**
 * One flag picks the tfjs compute backend. `wasm` is the default here (SIMD,
 * about 20 GFLOP/s per core), `cpu` the plain JavaScript fallback, `webgpu`
 * uses Deno's `navigator.gpu`, and `tensorflow` / `tensorflow-gpu` load
 * tfjs-node / tfjs-node-gpu lazily where they are installed.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";

/** The backends {@linkcode setupBackend} knows. */
export type BackendName = "wasm" | "cpu" | "webgpu" | "tensorflow" | "tensorflow-gpu";

/** The backend names, for CLI validation. */
export const BACKENDS: readonly BackendName[] = [
  "wasm",
  "cpu",
  "webgpu",
  "tensorflow",
  "tensorflow-gpu",
];

/** The npm package that provides each lazily loaded backend. */
const NODE_PACKAGES = {
  tensorflow: "@tensorflow/tfjs-node",
  "tensorflow-gpu": "@tensorflow/tfjs-node-gpu",
} as const;

/**
 * Makes `name` the active tfjs backend and waits until it is ready.
 * Throws with the install step when a lazily loaded backend is missing.
 *
 * @example
 * ```ts
 * import { setupBackend } from "./backend.ts";
 * await setupBackend("wasm");
 * ```
 */
export async function setupBackend(name: BackendName = "wasm"): Promise<void> {
  switch (name) {
    case "wasm":
      registerWasmUnsortedSegmentSum();
      registerWasmTransposingMatMul();
      break;
    case "cpu":
      break;
    case "webgpu":
      await loadWebGpu();
      break;
    case "tensorflow":
    case "tensorflow-gpu":
      await loadNodeBackend(NODE_PACKAGES[name]);
      break;
    default:
      throw new Error(`unknown backend "${name}"; one of ${BACKENDS.join(", ")}`);
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs backend "${name}" failed to initialise`);
  await tf.ready();
}

/**
 * Whether the active backend can read tensors synchronously. Deno's webgpu
 * cannot (tfjs reads GPU data synchronously through an OffscreenCanvas).
 */
export function readsSynchronously(): boolean {
  return tf.getBackend() !== "webgpu";
}

async function loadWebGpu(): Promise<void> {
  if (!("gpu" in navigator)) {
    throw new Error("the webgpu backend needs navigator.gpu (Deno 2 with WebGPU enabled)");
  }
  await import("@tensorflow/tfjs-backend-webgpu");
}

async function loadNodeBackend(pkg: string): Promise<void> {
  try {
    // A computed specifier: `deno check` and `deno install` leave it alone.
    await import(pkg);
  } catch (cause) {
    throw new Error(
      `the backend needs ${pkg}, which is not installed. Install it with:\n` +
        `  deno add npm:${pkg}@4.22.0 && deno install --allow-scripts=npm:${pkg}\n` +
        `(its install script downloads libtensorflow, so it needs network access)`,
      { cause },
    );
  }
}

/**
 * The gradient of `gather` needs `UnsortedSegmentSum`, which the wasm backend
 * lacks. This kernel sums the rows of `x` into `numSegments` segments by
 * `segmentIds` (negative ids are dropped), on the JavaScript side.
 */
function registerWasmUnsortedSegmentSum(): void {
  if (tf.getKernel("UnsortedSegmentSum", "wasm")) return;
  tf.registerKernel({
    kernelName: "UnsortedSegmentSum",
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as { numSegments: number }).numSegments;
      const wasm = backend as any;
      const values = wasm.readSync(x.dataId) as Float32Array | Int32Array;
      const ids = wasm.readSync(segmentIds.dataId) as Int32Array;
      const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
      const out = x.dtype === "int32"
        ? new Int32Array(numSegments * inner)
        : new Float32Array(numSegments * inner);
      for (let i = 0; i < ids.length; i++) {
        const s = ids[i];
        if (s < 0 || s >= numSegments) continue;
        for (let j = 0; j < inner; j++) out[s * inner + j] += values[i * inner + j];
      }
      return wasm.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype, undefined, out);
    },
  });
}

/**
 * The wasm `BatchMatMul` is about 20 times slower with a transposed operand
 * (the backward of every linear layer) than without. This wraps it: a
 * transposed operand is transposed explicitly first (a cheap copy), then
 * multiplied on the fast path.
 */
function registerWasmTransposingMatMul(): void {
  const matMul = tf.getKernel("BatchMatMul", "wasm")!;
  if (matMul.kernelFunc.name === "transposingMatMul") return;
  const transpose = tf.getKernel("Transpose", "wasm")!;
  tf.unregisterKernel("BatchMatMul", "wasm");
  tf.registerKernel({
    ...matMul,
    kernelFunc: function transposingMatMul(args) {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return matMul.kernelFunc(args);
      const copies: tf.TensorInfo[] = [];
      const flip = (x: tf.TensorInfo) => {
        const r = x.shape.length;
        const perm = [...Array(r - 2).keys(), r - 1, r - 2];
        const t = transpose.kernelFunc({
          ...args,
          inputs: { x },
          attrs: { perm },
        }) as tf.TensorInfo;
        copies.push(t);
        return t;
      };
      const out = matMul.kernelFunc({
        ...args,
        inputs: { a: transposeA ? flip(a) : a, b: transposeB ? flip(b) : b },
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
      for (const t of copies) (args.backend as tf.KernelBackend).disposeData(t.dataId);
      return out;
    },
  });
}
