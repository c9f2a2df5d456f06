/**
 * The MoE layer against the paper's equations written out in plain tfjs,
 * without the step machinery: one block per variant, on the same
 * parameters and inputs, equal outputs, load-balancing losses and
 * gradients (of every parameter and of both inputs, A and the tap T).
 *
 * ```text
 * top1, top2   H = A + sum_i G(x)_i E_i(x)
 * se           H = A + SE(x) + sum_i G(x)_i E_i(x)
 * scmoe        H = A + c SE(x) + c' sum_i G(t)_i E_i(t)   CG-1 c = sigmoid(x w), c' = 1; add c = c' = 1;
 *                                                         CG-2 [c, c'] = softmax(x W)
 * dgmoe        H = A + sum_i G(t)_i E_i(t) + sum_i G'(x)_i E_i(x)   G' skips G's choice
 * ```
 * with `x = LN(A)`, `t = LN_tap(T)`, `E_i(v) = GELU(v W1 + b1) W2 + b2`, `G` the softmax
 * probability of the chosen expert (top-2: a softmax over the two kept logits) and the
 * aux loss `E * sum_e mean_s softmax(h)_e * fraction_top1_e`.
 */
import { ok } from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../models/backend.ts";
import type { Combiner } from "../models/config.ts";
import { runLocal } from "../models/execute.ts";
import { moeLayer, type MoeLayerOptions, type MoeVariant } from "../models/moe_layer.ts";
import { computeStep, type RunContext } from "../models/steps.ts";

const B = 2, T = 5, C = 8, HID = 12, E = 4, S = B * T;
type Params = Map<string, tf.Variable>;

// ---- The paper's equations, in plain tfjs.

const LN = (v: tf.Tensor, P: Params, pre: string) => {
  const mu = tf.mean(v, -1, true);
  const var_ = tf.mean(tf.square(tf.sub(v, mu)), -1, true);
  return tf.add(
    tf.mul(tf.div(tf.sub(v, mu), tf.sqrt(tf.add(var_, 1e-5))), P.get(`${pre}.g`)!),
    P.get(`${pre}.b`)!,
  );
};
const GELU = (v: tf.Tensor) =>
  tf.mul(
    tf.mul(0.5, v),
    tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(v, tf.mul(0.044715, tf.pow(v, 3)))))),
  );
const FFN = (v: tf.Tensor, P: Params, pre: string) =>
  tf.add(
    tf.matMul(
      GELU(tf.add(tf.matMul(v, P.get(`${pre}.w1`)!), P.get(`${pre}.b1`)!)),
      P.get(`${pre}.w2`)!,
    ),
    P.get(`${pre}.b2`)!,
  );

/** `sum_i G(v)_i E_i(v)` [S, C] with top-k routing (off the tape) and the aux loss. */
function routed(v: tf.Tensor, P: Params, k: number, avoid?: number[]) {
  const h = tf.matMul(v, P.get("moe.gate.wg")!); // [S, E]
  const logits = h.arraySync() as number[][];
  const choice = logits.map((row, s) => {
    const ranked = row.map((_, e) => e).sort((a, b) => row[b] - row[a] || a - b);
    return ranked.slice(avoid && ranked[0] === avoid[s] ? 1 : 0).slice(0, k);
  });
  const probs = tf.softmax(h, -1);
  const mask = (e: number) => tf.tensor2d(choice.map((c) => [c.includes(e) ? 1 : 0]), [S, 1]);
  // top-1: G = softmax(h)_chosen; top-2: G = softmax over the two kept logits.
  const kept = tf.addN(
    Array.from({ length: E }, (_, e) => tf.mul(tf.exp(tf.slice(h, [0, e], [S, 1])), mask(e))),
  );
  const weight = (e: number) =>
    k === 1
      ? tf.mul(tf.slice(probs, [0, e], [S, 1]), mask(e))
      : tf.div(tf.mul(tf.exp(tf.slice(h, [0, e], [S, 1])), mask(e)), kept);
  const y = tf.addN(
    Array.from({ length: E }, (_, e) => tf.mul(weight(e), FFN(v, P, `moe.experts.${e}`))),
  );
  const fraction = Array.from({ length: E }, (_, e) => choice.filter((c) => c[0] === e).length / S);
  const aux = tf.mul(E, tf.sum(tf.mul(tf.mean(probs, 0), tf.tensor1d(fraction))));
  return { y, aux, first: choice.map((c) => c[0]) };
}

/** One MoE block of the paper: H [S, C] and its aux losses. */
function reference(
  variant: MoeVariant,
  combiner: Combiner,
  P: Params,
  A: tf.Tensor,
  Tap: tf.Tensor,
) {
  const x = LN(A, P, "moe.ln"), t = () => LN(Tap, P, "moe.ln_tap");
  switch (variant) {
    case "top1":
    case "top2": {
      const r = routed(x, P, variant === "top2" ? 2 : 1);
      return { H: tf.add(A, r.y), aux: [r.aux] };
    }
    case "se": {
      const r = routed(x, P, 1);
      return { H: tf.addN([A, FFN(x, P, "moe.shared"), r.y]), aux: [r.aux] };
    }
    case "scmoe": {
      const r = routed(t(), P, 1);
      const se = FFN(x, P, "moe.shared");
      if (combiner === "add") return { H: tf.addN([A, se, r.y]), aux: [r.aux] };
      const z = tf.matMul(x, P.get("moe.cg.w")!);
      if (combiner === "cg1") {
        return { H: tf.addN([A, tf.mul(tf.sigmoid(z), se), r.y]), aux: [r.aux] };
      }
      const [c, c2] = tf.split(tf.softmax(z, -1), 2, -1);
      return { H: tf.addN([A, tf.mul(c, se), tf.mul(c2, r.y)]), aux: [r.aux] };
    }
    case "dgmoe": {
      const p = routed(t(), P, 1);
      const q = routed(x, P, 1, p.first);
      return { H: tf.addN([A, p.y, q.y]), aux: [p.aux, q.aux] };
    }
  }
}

// ---- The layer, run by the step machinery on the same parameters.

/** The layer under test: input `A`, tap `T`, output `H`. */
function layerOptions(variant: MoeVariant, combiner: Combiner): MoeLayerOptions {
  return {
    name: "moe",
    variant,
    combiner,
    input: "A",
    tap: "T",
    output: "H",
    dim: C,
    hidden: HID,
    experts: E,
  };
}

function layerBlock(variant: MoeVariant, combiner: Combiner, P: Params) {
  const layer = moeLayer({ ...layerOptions(variant, combiner), evalCapacityFactor: E }); // nothing drops
  const inputs = computeStep({
    name: "inputs",
    inputs: {},
    outputs: { a: "A", t: "T" },
    run: (_, p) => ({ a: tf.reshape(p("A"), [B, T, C]), t: tf.reshape(p("T"), [B, T, C]) }),
  });
  const ctx: RunContext = {
    tokens: new Int32Array(S),
    batchSize: B,
    seqLen: T,
    training: false,
    groups: 1,
    rank: 0,
    size: 1,
    noise: () => null,
    routes: new Map(),
    layouts: new Map(),
  };
  const values = runLocal([inputs, ...layer.steps], ctx, (n) => P.get(n)!);
  return {
    H: tf.reshape(values.get("H")!, [S, C]),
    aux: layer.aux.map((n) => values.get(n)!),
    layer,
  };
}

function relErr(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() =>
    tf.norm(tf.sub(a, b)).dataSync()[0] / Math.max(tf.norm(b).dataSync()[0], 1e-12)
  );
}

const CASES: [MoeVariant, Combiner][] = [
  ["top1", "cg1"],
  ["top2", "cg1"],
  ["se", "cg1"],
  ["dgmoe", "cg1"],
  ["scmoe", "cg1"],
  ["scmoe", "add"],
  ["scmoe", "cg2"],
];

await setupBackend("cpu");

for (const [variant, combiner] of CASES) {
  Deno.test(`moe layer: ${variant}${variant === "scmoe" ? ` ${combiner}` : ""} equals the paper's equations`, () => {
    const specs = moeLayer(layerOptions(variant, combiner)).params;
    // Every parameter random (the combiner's and the norms' too), and the inputs A and T.
    let seed = 1;
    const P: Params = new Map(
      [
        ...specs.map((s) => [s.name, s.shape] as const),
        ["A", [S, C]] as const,
        ["T", [S, C]] as const,
      ].map((
        [name, shape],
      ) => [
        name,
        tf.variable(
          tf.randomNormal([...shape], 0, name.endsWith(".g") ? 0.3 : 0.5, "float32", seed++),
        ),
      ]),
    );
    const R = tf.randomNormal([S, C], 0, 1, "float32", 99); // a loss that weighs every output
    const lossOf = (H: tf.Tensor, aux: tf.Tensor[]) =>
      tf.add(tf.sum(tf.mul(H, R)), tf.mul(0.5, tf.addN(aux)));
    const vars = [...P.values()];
    const run = (f: () => { H: tf.Tensor; aux: tf.Tensor[] }) => {
      let H!: tf.Tensor, aux!: tf.Tensor[];
      const { grads } = tf.variableGrads(() => {
        ({ H, aux } = f());
        H = tf.keep(H);
        aux = aux.map((a) => tf.keep(a));
        return lossOf(H, aux) as tf.Scalar;
      }, vars);
      return { H, aux, grads };
    };
    const ref = run(() => reference(variant, combiner, P, P.get("A")!, P.get("T")!));
    const got = run(() => layerBlock(variant, combiner, P));
    try {
      ok(relErr(got.H, ref.H) < 1e-5, `H: relative error ${relErr(got.H, ref.H)}`);
      ref.aux.forEach((a, j) => {
        const [x, y] = [got.aux[j].dataSync()[0], a.dataSync()[0]];
        ok(Math.abs(x - y) < 1e-5 * Math.max(1, Math.abs(y)), `aux ${j}: ${x} vs ${y}`);
      });
      for (const name of P.keys()) {
        const [g, r] = [got.grads[P.get(name)!.name], ref.grads[P.get(name)!.name]];
        const unused = variant !== "scmoe" && variant !== "dgmoe" &&
          (name === "T" || name.startsWith("moe.ln_tap"));
        if (name === "moe.gate.wn" || unused) continue; // no gate noise in evaluation; T unread
        if (!g || !r) {
          // An expert no token chose: no gradient in the layer, a zero one in the equations.
          const other = g ?? r;
          ok(/experts/.test(name), `${name} has a gradient`);
          ok(
            !other || tf.max(tf.abs(other)).dataSync()[0] === 0,
            `${name}: a gradient on one side`,
          );
          continue;
        }
        const err = relErr(g, r);
        ok(err < 1e-4, `d loss / d ${name}: relative error ${err}`);
      }
    } finally {
      tf.dispose([
        ref.H,
        got.H,
        ...ref.aux,
        ...got.aux,
        ...Object.values(ref.grads),
        ...Object.values(got.grads),
        R,
      ]);
      tf.dispose(vars);
    }
  });
}
