/**
 * The GPT of the ScMoE paper's language-model experiments (Cai et al.,
 * arXiv:2404.05019), one user of the MoE layer: blocks of pre-norm
 * attention and MLP, every `moeEvery`-th block's MLP replaced by an MoE
 * layer of the configured variant.
 *
 * ```text
 * H_{-1} = wte[tokens] + wpe                      the embedding ("h-1")
 * A_i    = H_{i-1} + Attn_i(LN1(H_{i-1}))         "a{i}"
 * H_i    = A_i + MLP_i(LN2(A_i))                  "h{i}", a dense block
 * H_i    = moeLayer(A_i, tap T)                   "h{i}", an MoE block (moe_layer.ts)
 * logits = LN_f(H_{n-1}) wte^T
 * ```
 *
 * The tap of MoE block i: ScMoE Pos-1 `M_{i-1} = H_{i-1}`, Pos-2 `A_{i-1}`,
 * Pos-3 `H_{i-2}`; DGMoE `A_{i-1}`; the others read only `A_i`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { isMoeBlock, type ModelConfig } from "./config.ts";
import {
  addCosts,
  attentionCost,
  copy,
  elementwise,
  ffnCost,
  layerNormCost,
  linearCost,
  type StepShape,
} from "./cost.ts";
import { attention, embed, ffn, head, layerNorm } from "./layers.ts";
import { type MoeLayer, moeLayer } from "./moe_layer.ts";
import { normal, ParamList, type ParamSpec } from "./params.ts";
import { type ComputeStep, computeStep, lossStep, type Network, type Step } from "./steps.ts";

/** Input of block i, `H_{i-1}` (`h-1` is the embedding). */
const H = (i: number) => `h${i}`;
/** After attention of block i, `A_i`. */
const A = (i: number) => `a${i}`;

/**
 * The GPT as a {@linkcode Network}: its parameters and its program.
 *
 * @example
 * ```ts
 * import { gpt } from "./gpt.ts";
 * import { resolveConfig } from "./config.ts";
 * const net = gpt(resolveConfig({ variant: "scmoe", pos: 2 }));
 * net.program(true).map((s) => s.name); // ["embed", "blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", ...]
 * ```
 */
export function gpt(cfg: ModelConfig): Network {
  const layers = new Map<number, MoeLayer>();
  for (let i = 0; i < cfg.nLayer; i++) if (isMoeBlock(cfg, i)) layers.set(i, moeBlock(cfg, i));
  return {
    params: gptParams(cfg, layers),
    program: (withLoss) => {
      const steps: Step[] = [embedStep(cfg)];
      for (let i = 0; i < cfg.nLayer; i++) {
        steps.push(attentionStep(cfg, i));
        steps.push(...layers.get(i)?.steps ?? [mlpStep(cfg, i)]);
      }
      steps.push(headStep(cfg));
      if (withLoss) {
        const aux = [...layers.values()].map((l) => l.aux);
        steps.push(
          lossStep({
            aux,
            auxWeight: cfg.auxLossWeight,
            auxConvention: cfg.auxConvention,
            vocabSize: cfg.vocabSize,
          }),
        );
      }
      return steps;
    },
  };
}

/** Every parameter of the GPT of `cfg` (all experts), in a fixed order. */
export function paramSpecs(cfg: ModelConfig): ParamSpec[] {
  return gpt(cfg).params;
}

/**
 * The parameter prefix of MoE block i's gate and experts: its own
 * (`blocks.{i}.moe`), or with `moeShare` above 1 its group's shared module
 * (`moe.{g}`, g = the block's MoE index divided by `moeShare`).
 */
export function moeModule(cfg: ModelConfig, i: number): string {
  if (cfg.moeShare <= 1) return `blocks.${i}.moe`;
  const index = Math.floor((i + 1) / cfg.moeEvery) - 1; // 0 for the first MoE block
  return `moe.${Math.floor(index / cfg.moeShare)}`;
}

/** The MoE layer of block i: `H_i` from `A_i` and the variant's tap. */
function moeBlock(cfg: ModelConfig, i: number): MoeLayer {
  const tap = cfg.variant === "dgmoe"
    ? A(i - 1)
    : cfg.variant !== "scmoe"
    ? undefined
    : cfg.pos === 1
    ? H(i - 1) // M_{i-1}: the output of block i - 1
    : cfg.pos === 2
    ? A(i - 1)
    : H(i - 2); // H_{i-2}: the input of block i - 1
  return moeLayer({
    name: `blocks.${i}.moe`,
    variant: cfg.variant as Exclude<ModelConfig["variant"], "dense">,
    combiner: cfg.combiner,
    input: A(i),
    tap,
    output: H(i),
    dim: cfg.nEmbd,
    hidden: cfg.hidden,
    expertHidden: cfg.expertHidden,
    experts: cfg.nExperts,
    capacityFactor: cfg.capacityFactor,
    evalCapacityFactor: cfg.evalCapacityFactor,
    gateNoise: cfg.gateNoise,
    norm: `blocks.${i}.ln2`,
    residStd: residStd(cfg),
    block: i,
    module: moeModule(cfg, i),
  });
}

/** GPT-2: projections into the residual stream start with std 0.02 / sqrt(2 * nLayer). */
function residStd(cfg: ModelConfig): number {
  return 0.02 / Math.sqrt(2 * cfg.nLayer);
}

function gptParams(cfg: ModelConfig, layers: Map<number, MoeLayer>): ParamSpec[] {
  const C = cfg.nEmbd, std = 0.02;
  const params = new ParamList()
    .add("wte", [cfg.vocabSize, C], normal(std))
    .add("wpe", [cfg.blockSize, C], normal(std));
  const listed = { has: (name: string) => params.specs.some((p) => p.name === name) };
  for (let i = 0; i < cfg.nLayer; i++) {
    const b = `blocks.${i}`;
    params.layerNorm(`${b}.ln1`, C)
      .add(`${b}.attn.wqkv`, [C, 3 * C], normal(std))
      .add(`${b}.attn.bqkv`, [3 * C], { kind: "zeros" })
      .add(`${b}.attn.wo`, [C, C], normal(residStd(cfg)))
      .add(`${b}.attn.bo`, [C], { kind: "zeros" });
    const layer = layers.get(i);
    // From LN2 on; a module shared with an earlier block is listed there only.
    if (layer) params.specs.push(...layer.params.filter((p) => !listed.has(p.name)));
    else params.layerNorm(`${b}.ln2`, C).ffn(`${b}.mlp`, C, cfg.hidden, std, residStd(cfg));
  }
  return params.layerNorm("lnf", C).specs;
}

/** `H_{-1} = wte[tokens] + wpe`, [B, T, C]. */
function embedStep(cfg: ModelConfig): ComputeStep {
  return computeStep({
    name: "embed",
    inputs: {},
    outputs: { h: H(-1) },
    run: (_, p, ctx) => {
      if (ctx.seqLen > cfg.blockSize) {
        throw new RangeError(`${ctx.seqLen} tokens exceed blockSize ${cfg.blockSize}`);
      }
      const tokens = tf.tensor2d(ctx.tokens, [ctx.batchSize, ctx.seqLen], "int32");
      return { h: embed(tokens, p) }; // [B, T, C]
    },
    // gather of the token rows, slice and add of the positions
    cost: (s: StepShape) =>
      addCosts(
        copy(s.tokens * cfg.nEmbd, 2, s.bytesPerElement),
        elementwise(s.tokens * cfg.nEmbd, 1, s.bytesPerElement),
      ),
  });
}

/** `A_i = H_{i-1} + Attn_i(LN1(H_{i-1}))`, [B, T, C]. */
function attentionStep(cfg: ModelConfig, i: number): ComputeStep {
  const b = `blocks.${i}`;
  return computeStep({
    name: `${b}.attn`,
    inputs: { h: H(i - 1) },
    outputs: { a: A(i) },
    run: ({ h }, p) => ({
      a: tf.add(h, attention(layerNorm(h, p, `${b}.ln1`), p, `${b}.attn`, cfg.nHead)),
    }),
    cost: (s: StepShape) =>
      addCosts(
        layerNormCost(s.tokens, cfg.nEmbd, s.bytesPerElement),
        attentionCost(s.batch, s.seq, cfg.nEmbd, cfg.nHead, s.bytesPerElement),
        elementwise(s.tokens * cfg.nEmbd, 1, s.bytesPerElement), // residual add
      ),
  });
}

/** A dense block's `H_i = A_i + MLP_i(LN2(A_i))`, [B, T, C]. */
function mlpStep(cfg: ModelConfig, i: number): ComputeStep {
  const b = `blocks.${i}`;
  return computeStep({
    name: `${b}.mlp`,
    inputs: { a: A(i) },
    outputs: { h: H(i) },
    run: ({ a }, p) => ({ h: tf.add(a, ffn(layerNorm(a, p, `${b}.ln2`), p, `${b}.mlp`)) }),
    cost: (s: StepShape) =>
      addCosts(
        layerNormCost(s.tokens, cfg.nEmbd, s.bytesPerElement),
        ffnCost(s.tokens, cfg.nEmbd, cfg.hidden, s.bytesPerElement),
        elementwise(s.tokens * cfg.nEmbd, 1, s.bytesPerElement),
      ),
  });
}

/** `logits = LN_f(H_{n-1}) wte^T`, [B, T, V]. */
function headStep(cfg: ModelConfig): ComputeStep {
  return computeStep({
    name: "head",
    inputs: { h: H(cfg.nLayer - 1) },
    outputs: { logits: "logits" },
    run: ({ h }, p) => ({ logits: head(h, p) }),
    cost: (s: StepShape) =>
      addCosts(
        layerNormCost(s.tokens, cfg.nEmbd, s.bytesPerElement),
        linearCost(s.tokens, cfg.nEmbd, cfg.vocabSize, s.bytesPerElement, false),
      ),
  });
}
