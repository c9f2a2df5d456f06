/**
 * The dense layers of the GPT-style model, as functions of their inputs and a
 * parameter lookup: layer norm, causal multi-head attention, the GELU MLP
 * (also the shape of every expert), embeddings and the tied output head.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Tensor } from "./tf.ts";

/** Looks a parameter up by its role name. */
export type ParamLookup = (name: string) => Tensor;

/** `LN(x) = (x - mean) / sqrt(var + 1e-5) * g + b` over the last axis. */
export function layerNorm(x: Tensor, p: ParamLookup, prefix: string): Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5)));
  return tf.add(tf.mul(xhat, p(`${prefix}.g`)), p(`${prefix}.b`));
}

/** GELU, tanh approximation (as GPT-2). */
export function gelu(x: Tensor): Tensor {
  const cube = tf.mul(tf.mul(x, x), x);
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, cube)));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/** `x W + b` for x of any rank (the last axis is contracted). */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const [cin, cout] = w.shape;
  const y = tf.matMul(tf.reshape(x, [-1, cin]), w);
  const out = tf.reshape(y, [...x.shape.slice(0, -1), cout]);
  return b ? tf.add(out, b) : out;
}

/** `FFN(x) = GELU(x W1 + b1) W2 + b2`: the dense MLP, every expert and the shared expert. */
export function ffn(x: Tensor, p: ParamLookup, prefix: string): Tensor {
  const h = gelu(linear(x, p(`${prefix}.w1`), p(`${prefix}.b1`))); // [..., hidden]
  return linear(h, p(`${prefix}.w2`), p(`${prefix}.b2`)); // [..., C]
}

/** Causal multi-head self-attention of `x` [B, T, C]. */
export function attention(x: Tensor, p: ParamLookup, prefix: string, nHead: number): Tensor {
  const [B, T, C] = x.shape;
  const hd = C / nHead;
  const qkv = linear(x, p(`${prefix}.wqkv`), p(`${prefix}.bqkv`)); // [B, T, 3C]
  const heads = (t: Tensor) => tf.transpose(tf.reshape(t, [B, T, nHead, hd]), [0, 2, 1, 3]);
  const [q, k, v] = tf.split(qkv, 3, -1).map(heads); // [B, nh, T, hd]
  const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)); // [B, nh, T, T]
  const att = tf.softmax(tf.add(scores, causalMask(T)), -1); // [B, nh, T, T]
  const y = tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [B, T, C]); // [B, T, C]
  return linear(y, p(`${prefix}.wo`), p(`${prefix}.bo`));
}

/** [T, T]: 0 on and below the diagonal, -1e9 above it (a token sees only its past). */
function causalMask(T: number): Tensor {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}

/** Token plus position embedding of `tokens` [B, T]: [B, T, C]. */
export function embed(tokens: Tensor, p: ParamLookup): Tensor {
  const T = tokens.shape[1] as number;
  const wpe = p("wpe");
  const tok = tf.gather(p("wte"), tokens); // [B, T, C]
  return tf.add(tok, tf.slice(wpe, [0, 0], [T, wpe.shape[1] as number])); // [B, T, C]
}

/** Logits of the final hidden state [B, T, C] with the output tied to the token embedding: [B, T, V]. */
export function head(h: Tensor, p: ParamLookup): Tensor {
  const x = layerNorm(h, p, "lnf"); // [B, T, C]
  const [B, T, C] = x.shape;
  const logits = tf.matMul(tf.reshape(x, [B * T, C]), p("wte"), false, true); // [B*T, V]
  return tf.reshape(logits, [B, T, -1]);
}

/** Mean next-token cross-entropy of `logits` [B, T, V] against `targets` [B, T]. */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  const V = logits.shape[2] as number;
  const logp = tf.logSoftmax(tf.reshape(logits, [-1, V])); // [B*T, V]
  const onehot = tf.oneHot(tf.reshape(targets, [-1]), V); // [B*T, V]
  return tf.neg(tf.mean(tf.sum(tf.mul(logp, onehot), -1)));
}
