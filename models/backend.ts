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
 * A backend that cannot run here: its package is not installed or does not
 * load, or (webgpu) there is no GPU adapter, or only a software one that was
 * not asked for. The message is one line naming the fix or the backend to
 * use instead.
 */
export class BackendUnavailableError extends Error {
  /** Builds the error for `backend` with a one-line message. */
  constructor(readonly backend: BackendName, message: string, options?: ErrorOptions) {
    super(message.replace(/\s*\n\s*/g, " "), options);
    this.name = "BackendUnavailableError";
  }
}

/** Options of {@linkcode setupBackend}. */
export interface SetupBackendOptions {
  /**
   * webgpu: accept a software adapter (llvmpipe, SwiftShader, WARP: what
   * Deno offers on a machine without a GPU). It computes correctly but far
   * slower than wasm, so it is refused unless asked for.
   */
  allowSoftwareAdapter?: boolean;
}

/**
 * Makes `name` the active tfjs backend and waits until it is ready.
 *
 * @throws {BackendUnavailableError} when the backend cannot run here: a
 *   lazily loaded package is missing (the message names the install step), or
 *   webgpu has no adapter or only a software one (without
 *   `allowSoftwareAdapter`).
 *
 * @example
 * ```ts
 * import { setupBackend } from "./backend.ts";
 * await setupBackend("wasm");
 * ```
 */
export async function setupBackend(
  name: BackendName = "wasm",
  options: SetupBackendOptions = {},
): Promise<void> {
  switch (name) {
    case "wasm":
      registerWasmUnsortedSegmentSum();
      registerWasmTransposingMatMul();
      break;
    case "cpu":
      break;
    case "webgpu":
      await loadWebGpu(options.allowSoftwareAdapter === true);
      break;
    case "tensorflow":
    case "tensorflow-gpu":
      await loadNodeBackend(name);
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

/** Adapter descriptions of software rasterizers, for drivers that do not flag them as fallback. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|softpipe|swiftshader|basic render driver/i;

/**
 * Checks that backend `name` can run on this host, without making it the
 * active one: the tfjs-node package loads, or (webgpu) a hardware adapter
 * exists (or a software one with `allowSoftwareAdapter`). A driver calls it
 * before starting ranks on its own host, so a refusal comes before any
 * Worker holds an adapter.
 *
 * @throws {BackendUnavailableError} as {@linkcode setupBackend} would.
 */
export async function checkBackend(
  name: BackendName,
  options: SetupBackendOptions = {},
): Promise<void> {
  if (name === "webgpu") await probeWebGpu(options.allowSoftwareAdapter === true);
  else if (name === "tensorflow" || name === "tensorflow-gpu") await loadNodeBackend(name);
}

async function loadWebGpu(allowSoftware: boolean): Promise<void> {
  await probeWebGpu(allowSoftware);
  await import("@tensorflow/tfjs-backend-webgpu");
}

/** A usable WebGPU adapter exists: a hardware one, or a software one when allowed. */
async function probeWebGpu(allowSoftware: boolean): Promise<void> {
  const instead = "use --backend wasm (the default)";
  if (!("gpu" in navigator)) {
    throw new BackendUnavailableError(
      "webgpu",
      `webgpu: this Deno has no navigator.gpu; ${instead}`,
    );
  }
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  if (adapter === null) {
    throw new BackendUnavailableError("webgpu", `webgpu: no GPU adapter found; ${instead}`);
  }
  const info = (adapter as { info?: GPUAdapterInfo }).info;
  const description = [info?.description, info?.vendor, info?.architecture]
    .filter((s) => s).join(", ") || "unnamed";
  const flagged = (x: unknown) => (x as { isFallbackAdapter?: boolean })?.isFallbackAdapter;
  const software = flagged(info) === true || flagged(adapter) === true ||
    SOFTWARE_ADAPTER.test(description);
  if (software && !allowSoftware) {
    throw new BackendUnavailableError(
      "webgpu",
      `webgpu: only a software adapter (${description}) is available, far slower than wasm; ` +
        `pass allowSoftwareAdapter / --allow-software-webgpu to use it anyway, or ${instead}`,
    );
  }
}

async function loadNodeBackend(name: "tensorflow" | "tensorflow-gpu"): Promise<void> {
  const pkg = NODE_PACKAGES[name];
  try {
    // A computed specifier: `deno check` and `deno install` leave it alone.
    await import(pkg);
  } catch (cause) {
    const missing = (cause as { code?: unknown }).code === "ERR_MODULE_NOT_FOUND";
    const what = missing
      ? `${pkg} is not installed; add it`
      : `${pkg} does not load (${String((cause as Error)?.message ?? cause).split("\n")[0]}); ` +
        `reinstall it`;
    throw new BackendUnavailableError(
      name,
      `${name}: ${what} with \`deno add npm:${pkg}@4.22.0 && ` +
        `deno install --allow-scripts=npm:${pkg}\` (its install script downloads libtensorflow, ` +
        `so it needs network access), or use --backend wasm (the default)`,
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
