import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import {
  AdamW,
  clipScale,
  decaysWeight,
  localGradSquares,
  warmupCosine,
} from "../models/optimizer.ts";

await tf.setBackend("cpu");

const SHAPES: Record<string, number[]> = {
  "wte": [5, 4],
  "blocks.0.ln1.g": [4],
  "blocks.0.attn.wq": [4, 4],
  "blocks.0.attn.bq": [4],
  "blocks.1.moe.experts.2.w1": [4, 3],
};

/** Deterministic pseudo-random values in [-1, 1) (a linear congruential sequence). */
function values(n: number, seed: number): number[] {
  let x = seed >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 31 - 1;
  });
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function makeParams(): Map<string, tf.Variable> {
  return new Map(
    Object.entries(SHAPES).map((
      [name, shape],
      i,
    ) => [name, tf.variable(tf.tensor(values(size(shape), 100 + i), shape))]),
  );
}

function makeGrads(step: number): Map<string, tf.Tensor> {
  return new Map(
    Object.entries(SHAPES).map((
      [name, shape],
      i,
    ) => [name, tf.tensor(values(size(shape), 1000 * step + i).map((x) => 3 * x), shape)]),
  );
}

/** Plain-JS AdamW in float64, written from the paper's algorithm, element by element. */
function referenceAdamW(
  params: Record<string, number[]>,
  gradsPerStep: Record<string, number[]>[],
  opts: {
    lr: (s: number) => number;
    b1: number;
    b2: number;
    eps: number;
    wd: number;
    decay: Set<string>;
    maxNorm: number;
  },
): Record<string, number[]> {
  const p = structuredClone(params);
  const m: Record<string, number[]> = {};
  const v: Record<string, number[]> = {};
  for (const k in p) {
    m[k] = p[k].map(() => 0);
    v[k] = p[k].map(() => 0);
  }
  gradsPerStep.forEach((grads, s) => {
    const t = s + 1;
    const lr = opts.lr(s);
    let sq = 0;
    for (const k in grads) for (const g of grads[k]) sq += g * g;
    const norm = Math.sqrt(sq);
    const c = norm > opts.maxNorm ? opts.maxNorm / norm : 1;
    for (const k in p) {
      for (let i = 0; i < p[k].length; i++) {
        const g = grads[k][i] * c;
        m[k][i] = opts.b1 * m[k][i] + (1 - opts.b1) * g;
        v[k][i] = opts.b2 * v[k][i] + (1 - opts.b2) * g * g;
        const mHat = m[k][i] / (1 - Math.pow(opts.b1, t));
        const vHat = v[k][i] / (1 - Math.pow(opts.b2, t));
        if (opts.decay.has(k)) p[k][i] -= lr * opts.wd * p[k][i];
        p[k][i] -= (lr * mHat) / (Math.sqrt(vHat) + opts.eps);
      }
    }
  });
  return p;
}

function toRecord(map: Map<string, tf.Tensor>): Record<string, number[]> {
  return Object.fromEntries([...map].map(([k, t]) => [k, [...t.dataSync()]]));
}

function assertClose(actual: number[], expected: number[], what: string) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(
      err <= 1e-6 + 1e-5 * Math.abs(expected[i]),
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

Deno.test("AdamW with clipping and schedule matches a float64 reference over 6 steps", () => {
  const params = makeParams();
  const initial = toRecord(params);
  const lr = warmupCosine({ peak: 0.05, warmup: 2, total: 6 });
  const opt = new AdamW(params, { lr, beta1: 0.8, beta2: 0.9, eps: 1e-6, weightDecay: 0.3 });
  assert.deepEqual([...opt.decayed].sort(), ["blocks.0.attn.wq", "blocks.1.moe.experts.2.w1"]);
  const allGrads: Record<string, number[]>[] = [];
  const before = tf.memory().numTensors;
  for (let s = 0; s < 6; s++) {
    const grads = makeGrads(s);
    allGrads.push(toRecord(grads));
    const { dense, expert } = localGradSquares(grads);
    assert.equal(opt.update(grads, clipScale(Math.sqrt(dense + expert), 4)), lr(s));
    tf.dispose([...grads.values()]);
  }
  assert.equal(tf.memory().numTensors, before, "no tensors leak");
  assert.equal(opt.step, 6);
  const expected = referenceAdamW(initial, allGrads, {
    lr,
    b1: 0.8,
    b2: 0.9,
    eps: 1e-6,
    wd: 0.3,
    decay: new Set(opt.decayed),
    maxNorm: 4,
  });
  const actual = toRecord(params);
  for (const name in expected) assertClose(actual[name], expected[name], name);
  // the reference is sensitive: without clipping the result differs
  const unclipped = referenceAdamW(initial, allGrads, {
    lr,
    b1: 0.8,
    b2: 0.9,
    eps: 1e-6,
    wd: 0.3,
    decay: new Set(opt.decayed),
    maxNorm: Infinity,
  });
  assert.notDeepEqual(unclipped, expected);
  opt.dispose();
  tf.dispose([...params.values()]);
});

Deno.test("weight decay rule: matrices decay; vectors, norms and embeddings do not", () => {
  const cases: [string, number[], boolean][] = [
    ["blocks.0.attn.wq", [8, 8], true],
    ["blocks.1.moe.experts.3.w2", [16, 8], true],
    ["blocks.1.moe.gate.w", [8, 4], true],
    ["blocks.0.mlp.b1", [16], false],
    ["blocks.0.ln1.g", [8], false],
    ["blocks.0.ln_2.weight", [8], false],
    ["ln_f.b", [8], false],
    ["lnf.g", [8], false],
    ["blocks.1.moe.ln_tap.g", [8], false],
    ["lnf.w", [1, 8], false],
    ["blocks.0.norm.scale", [1, 8], false],
    ["wte", [256, 8], false],
    ["wpe", [64, 8], false],
    ["tok_emb.weight", [256, 8], false],
    ["blocks.0.lnx.w", [8, 8], true],
  ];
  for (const [name, shape, want] of cases) assert.equal(decaysWeight(name, shape), want, name);
});

Deno.test("warmupCosine: linear warm-up, cosine to min, flat after", () => {
  const lr = warmupCosine({ peak: 1, warmup: 4, total: 14, min: 0.1 });
  const at = (s: number) => Math.round(lr(s) * 1e12) / 1e12;
  assert.deepEqual([0, 1, 2, 3].map(at), [0.25, 0.5, 0.75, 1]);
  assert.equal(at(4), 1);
  assert.equal(at(9), 0.55);
  assert.equal(at(14), 0.1);
  assert.equal(at(100), 0.1);
  assert.equal(warmupCosine({ peak: 2, warmup: 0, total: 10 })(10), 0.2, "default min is peak/10");
  assert.throws(() => warmupCosine({ peak: 1, warmup: 10, total: 10 }), {
    name: "RangeError",
    message: "need 0 <= warmup < total, got warmup 10, total 10",
  });
});

Deno.test("localGradSquares splits dense and expert; two ranks reproduce the global norm", () => {
  const g = (xs: number[]) => tf.tensor1d(xs);
  const dense = new Map([["wte", g([1, 2])], ["blocks.0.ln1.g", g([2])]]);
  const rank0 = new Map([...dense, ["blocks.1.moe.experts.0.w1", g([3, 0])]]);
  const rank1 = new Map([...dense, ["blocks.1.moe.experts.1.w1", g([0, 4])]]);
  const whole = new Map([...rank0, ...rank1]);
  assert.deepEqual(localGradSquares(rank0), { dense: 9, expert: 9 });
  assert.deepEqual(localGradSquares(rank1), { dense: 9, expert: 16 });
  const a = localGradSquares(rank0);
  const b = localGradSquares(rank1);
  const one = localGradSquares(whole);
  assert.equal(a.dense + a.expert + b.expert, one.dense + one.expert);
  assert.equal(Math.sqrt(one.dense + one.expert), Math.sqrt(34));
  assert.equal(clipScale(10, 1), 0.1);
  assert.equal(clipScale(0.5, 1), 1);
  tf.dispose([...whole.values()]);
});

Deno.test("exported state resumes bit-exactly in a fresh optimizer", () => {
  const a = makeParams();
  const optA = new AdamW(a, { lr: 0.01 });
  for (let s = 0; s < 3; s++) optA.update(makeGrads(s));
  const state = optA.exportState();
  assert.equal(state.step, 3);
  assert.equal(state.tensors.size, 10);
  assert.deepEqual(state.tensors.get("wte.adam_v")!.shape, [5, 4]);

  const clone = () => new Map([...a].map(([k, v]) => [k, tf.variable(v.clone())]));
  const b = clone();
  const fresh = clone();
  const optB = new AdamW(b, { lr: 0.01 });
  optB.importState(state);
  assert.equal(optB.step, 3);
  const optFresh = new AdamW(fresh, { lr: 0.01 });
  for (let s = 3; s < 5; s++) {
    const grads = makeGrads(s);
    optA.update(grads);
    optB.update(grads);
    optFresh.update(grads);
  }
  assert.deepEqual(toRecord(b), toRecord(a));
  assert.notDeepEqual(toRecord(fresh), toRecord(a), "without the state the run diverges");
});

Deno.test("importState and update reject mismatched names and shapes", () => {
  const params = makeParams();
  const opt = new AdamW(params, { lr: 0.01 });
  const state = opt.exportState();
  const missing = { step: 1, tensors: new Map(state.tensors) };
  missing.tensors.delete("wte.adam_m");
  assert.throws(() => opt.importState(missing), { message: "optimizer state lacks wte.adam_m" });
  const extra = { step: 1, tensors: new Map(state.tensors) };
  extra.tensors.set("blocks.9.moe.experts.7.w1.adam_m", { shape: [1], data: new Float32Array(1) });
  assert.throws(() => opt.importState(extra), {
    message: "optimizer state has unexpected blocks.9.moe.experts.7.w1.adam_m",
  });
  const bent = { step: 1, tensors: new Map(state.tensors) };
  bent.tensors.set("wte.adam_v", { shape: [4, 5], data: new Float32Array(20) });
  assert.throws(() => opt.importState(bent), {
    message: "optimizer state wte.adam_v is not float32 [5,4]",
  });
  assert.equal(opt.step, 0, "a rejected import changes nothing");

  const grads = makeGrads(0);
  grads.delete("wte");
  assert.throws(() => opt.update(grads), { message: "no gradient for parameter wte" });
  grads.set("wte", tf.zeros([4, 5]));
  assert.throws(() => opt.update(grads), {
    message: "gradient of wte has shape [4,5], parameter [5,4]",
  });
  grads.set("wte", tf.zeros([5, 4]));
  grads.set("nope", tf.zeros([1]));
  assert.throws(() => opt.update(grads), { message: "gradient for unknown parameter nope" });
});
