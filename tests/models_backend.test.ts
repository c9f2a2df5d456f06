import { deepEqual, ok, rejects } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, BackendUnavailableError, setupBackend } from "../models/backend.ts";
import { createModel, disposeModel, trainStep } from "../models/model.ts";

/** Runs `f` on a backend and returns its values as plain arrays. */
async function on(name: BackendName, f: () => tf.Tensor[]): Promise<number[][]> {
  // Correctness only: a software webgpu adapter (no GPU here) will do.
  await setupBackend(name, { allowSoftwareAdapter: true });
  const outs = f();
  const values = await Promise.all(outs.map(async (t) => Array.from(await t.data())));
  tf.dispose(outs);
  return values;
}

/** Float segment sums over rows of a 3-d tensor (a dropped id -1) and the gradient of `gather`. */
const floatCases = () => {
  const x = tf.tensor3d(Array.from({ length: 24 }, (_, i) => i * 0.5 - 3), [4, 3, 2]);
  const ids = tf.tensor1d([2, 0, 2, -1], "int32");
  const table = tf.tensor2d(Array.from({ length: 15 }, (_, i) => i), [5, 3]);
  const weights = tf.reshape(tf.range(1, 19), [6, 3]);
  const gatherGrad = tf.grad((t: tf.Tensor) =>
    tf.sum(tf.mul(tf.gather(t, tf.tensor1d([4, 1, 1, 0, 4, 4], "int32")), weights))
  )(table);
  return [tf.unsortedSegmentSum(x, ids, 3), gatherGrad];
};

const intCase = () => [
  tf.unsortedSegmentSum(
    tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], "int32"),
    tf.tensor1d([1, 1, 0], "int32"),
    3,
  ),
];

Deno.test("backend: wasm UnsortedSegmentSum and the gradient of gather match cpu", async () => {
  const cpu = await on("cpu", () => [...floatCases(), ...intCase()]);
  const wasm = await on("wasm", () => [...floatCases(), ...intCase()]);
  deepEqual(wasm, cpu);
  deepEqual(cpu[2], [5, 6, 4, 6, 0, 0]);
  await setupBackend("cpu");
});

Deno.test("backend: wasm matMul with transposed operands matches cpu", async () => {
  const cases = () => {
    const a = tf.tensor3d(Array.from({ length: 24 }, (_, i) => Math.sin(i)), [2, 3, 4]);
    const b = tf.tensor3d(Array.from({ length: 40 }, (_, i) => Math.cos(i)), [2, 4, 5]);
    const bt = tf.transpose(b, [0, 2, 1]), at = tf.transpose(a, [0, 2, 1]);
    return [
      tf.matMul(a, b),
      tf.matMul(a, bt, false, true),
      tf.matMul(at, b, true, false),
      tf.matMul(at, bt, true, true),
    ];
  };
  const cpu = await on("cpu", cases);
  const wasm = await on("wasm", cases);
  wasm.flat().forEach((x, i) => ok(Math.abs(x - cpu.flat()[i]) < 1e-5));
  await setupBackend("cpu");
});

for (const name of ["tensorflow", "tensorflow-gpu"] as const) {
  Deno.test(`backend: ${name} names its install step when missing`, async () => {
    const pkg = name === "tensorflow" ? "@tensorflow/tfjs-node" : "@tensorflow/tfjs-node-gpu";
    await rejects(setupBackend(name), (e: Error) => {
      ok(e instanceof BackendUnavailableError, String(e));
      ok(!e.message.includes("\n"), e.message);
      ok(e.message.includes(`deno add npm:${pkg}@4.22.0`), e.message);
      ok(e.message.includes(`deno install --allow-scripts=npm:${pkg}`), e.message);
      return true;
    });
  });
}

Deno.test("backend: an unknown name is refused", async () => {
  await rejects(setupBackend("metal" as BackendName), /unknown backend "metal"/);
});

const adapter = "gpu" in navigator ? await navigator.gpu.requestAdapter().catch(() => null) : null;

Deno.test({
  name: "backend: webgpu computes the gradient of gather like cpu",
  ignore: adapter === null,
  async fn() {
    const cpu = await on("cpu", floatCases);
    const gpu = await on("webgpu", floatCases);
    deepEqual(gpu, cpu);
    await setupBackend("cpu");
  },
});

Deno.test({
  name: "backend: a training step on webgpu matches cpu",
  ignore: adapter === null,
  async fn() {
    const tokens = new Int32Array(2 * 9).map((_, i) => (i * 5) % 32);
    const cfg = { vocabSize: 32, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, hidden: 32 };
    const losses: number[] = [], wte: Float32Array[] = [];
    for (const name of ["cpu", "webgpu"] as const) {
      await setupBackend(name, { allowSoftwareAdapter: true });
      const model = createModel(cfg, { seed: 2 });
      const res = await trainStep(model, { tokens, rows: 2, cols: 9 });
      losses.push(res.loss);
      wte.push((await res.grads.get("wte")!.data()) as Float32Array);
      tf.dispose([...res.grads.values()]);
      disposeModel(model);
    }
    ok(Math.abs(losses[0] - losses[1]) < 1e-3 * losses[0], `${losses}`);
    const diff = wte[0].reduce((s, x, i) => s + (x - wte[1][i]) ** 2, 0);
    const norm = wte[0].reduce((s, x) => s + x * x, 0);
    ok(Math.sqrt(diff / norm) < 1e-3, `wte gradient differs by ${Math.sqrt(diff / norm)}`);
    await setupBackend("cpu");
  },
});
