/**
 * Your own model with the MoE layer: a small causal MLP-mixer (token-mixing
 * and channel MLPs instead of attention) whose every second channel MLP is
 * an ScMoE layer, trained on 2 local ranks (actors as Workers) on a
 * synthetic copy task: each sequence repeats its first `period` tokens, so
 * after them every next token is the one `period` places back.
 *
 * ```sh
 * deno run -A --v8-flags=--initial-heap-size=128 examples/moe_mixer.ts [--steps N] [--explain]
 * ```
 *
 * With `--explain` it first prints which of the mixer's own steps each
 * all-to-all overlaps. It prints one JSON line: the first and last steps'
 * losses and the measured share of the MoE layers' communication hidden
 * behind compute (median over the steps after the scheduler's warm-up).
 *
 * The classes and functions below also run inside the rank actors (each
 * imports this module by its URL), so the driver sits under
 * `import.meta.main`.
 *
 * @module
 */
import {
  AdamW,
  type Batch,
  computeStep,
  createGroup,
  createModel,
  explainOverlap,
  ffn,
  get,
  init,
  joinGroup,
  layerNorm,
  linear,
  lossStep,
  type Model,
  type MoeLayer,
  moeLayer,
  type MoeVariant,
  type Network,
  normal,
  ParamList,
  remote,
  setupBackend,
  shutdown,
  type Step,
  type Tensor,
  tf,
  trainStep,
} from "@scmoe/actors";

/** The mixer's shape and its MoE variant. */
export interface MixerConfig {
  /** Token ids 0..vocab-1. */
  vocab: number;
  /** Tokens per sequence, T (the token-mixing weights are [T, T]). */
  seq: number;
  /** Width C. */
  dim: number;
  /** Hidden width of the channel MLPs and of each expert. */
  hidden: number;
  /** Blocks; every second one (1, 3, ...) holds an MoE layer. */
  blocks: number;
  /** Experts per MoE layer. */
  experts: number;
  /** The MoE variant; ScMoE and DGMoE tap the preceding block's `A` (Pos-2). */
  variant: MoeVariant;
}

/** The example's mixer. */
export const MIXER: MixerConfig = {
  vocab: 16,
  seq: 16,
  dim: 32,
  hidden: 64,
  blocks: 4,
  experts: 4,
  variant: "scmoe",
};

/** Block i's input `H_{i-1}` ("h-1": the embedding) and its value after token mixing, `A_i`. */
const H = (i: number) => `h${i}`;
const A = (i: number) => `a${i}`;

/**
 * The mixer as a network the library runs:
 *
 * ```text
 * H_{-1} = wte[tokens]                                 [B, T, C]
 * A_i    = H_{i-1} + Mix_i(LN1(H_{i-1}))               token mixing: Mix(x)[t] = sum_{s<=t} W[t,s] x[s]
 * H_i    = A_i + MLP_i(LN2(A_i))                       even blocks
 * H_i    = moeLayer(input A_i, tap A_{i-1})            odd blocks: ScMoE Pos-2 by default
 * logits = LN_f(H_{n-1}) W_out                         [B, T, V]
 * ```
 */
export function mixer(cfg: MixerConfig = MIXER): Network {
  const { vocab: V, seq: T, dim: C, hidden } = cfg;
  const layers = new Map<number, MoeLayer>();
  for (let i = 1; i < cfg.blocks; i += 2) {
    layers.set(
      i,
      moeLayer({
        name: `blocks.${i}.moe`,
        variant: cfg.variant,
        input: A(i),
        tap: A(i - 1), // the preceding block's representation: what the gate and experts read
        output: H(i),
        dim: C,
        hidden,
        experts: cfg.experts,
        norm: `blocks.${i}.ln2`,
        std: 0.1,
      }),
    );
  }
  const params = new ParamList().add("wte", [V, C], normal(0.5));
  for (let i = 0; i < cfg.blocks; i++) {
    params.layerNorm(`blocks.${i}.ln1`, C)
      .add(`blocks.${i}.mix.w`, [T, T], normal(0.1));
    const layer = layers.get(i);
    if (layer) params.specs.push(...layer.params);
    else params.layerNorm(`blocks.${i}.ln2`, C).ffn(`blocks.${i}.mlp`, C, hidden, 0.1, 0.1);
  }
  params.layerNorm("lnf", C).add("head", [C, V], normal(0.1));

  const program = (withLoss: boolean): Step[] => {
    const steps: Step[] = [
      computeStep({
        name: "embed",
        inputs: {},
        outputs: { h: H(-1) },
        run: (_, p, ctx) => {
          const tokens = tf.tensor2d(ctx.tokens, [ctx.batchSize, ctx.seqLen], "int32");
          return { h: tf.gather(p("wte"), tokens) }; // [B, T, C]
        },
      }),
    ];
    for (let i = 0; i < cfg.blocks; i++) {
      const b = `blocks.${i}`;
      steps.push(computeStep({
        name: `${b}.mix`,
        inputs: { h: H(i - 1) },
        outputs: { a: A(i) },
        run: ({ h }, p) => ({ a: tf.add(h, tokenMix(layerNorm(h, p, `${b}.ln1`), p, b)) }),
      }));
      steps.push(
        ...layers.get(i)?.steps ?? [computeStep({
          name: `${b}.mlp`,
          inputs: { a: A(i) },
          outputs: { h: H(i) },
          run: ({ a }, p) => ({ h: tf.add(a, ffn(layerNorm(a, p, `${b}.ln2`), p, `${b}.mlp`)) }),
        })],
      );
    }
    steps.push(computeStep({
      name: "head",
      inputs: { h: H(cfg.blocks - 1) },
      outputs: { logits: "logits" },
      run: ({ h }, p) => ({ logits: linear(layerNorm(h, p, "lnf"), p("head")) }), // [B, T, V]
    }));
    if (withLoss) {
      // One entry a layer: each layer's balancing loss weighted 0.01, summed over the layers.
      const aux = [...layers.values()].map((l) => l.aux);
      steps.push(lossStep({ aux, auxWeight: 0.01 }));
    }
    return steps;
  };
  return { params: params.specs, program };
}

/** Causal token mixing of `x` [B, T, C]: `y[t] = sum_{s<=t} W[t, s] x[s]`. */
function tokenMix(x: Tensor, p: (name: string) => Tensor, block: string): Tensor {
  const [B, T, C] = x.shape;
  const causal = tf.linalg.bandPart(tf.ones([T, T]), -1, 0); // [T, T]: 1 on and below the diagonal
  const w = tf.mul(tf.slice(p(`${block}.mix.w`), [0, 0], [T, T]), causal); // [T, T]
  const rows = tf.reshape(tf.transpose(x, [1, 0, 2]), [T, B * C]); // [T, B*C]
  return tf.transpose(tf.reshape(tf.matMul(w, rows), [T, B, C]), [1, 0, 2]); // [B, T, C]
}

/** Tokens repeat with this period: the copy task. */
export const PERIOD = 4;

/**
 * Rank `rank`'s share of global batch `step` of the copy task: `rows`
 * windows of `seq + 1` tokens each (the global batch is `rows * size`).
 */
export function copyBatch(step: number, rank: number, rows: number, cfg = MIXER): Batch {
  const cols = cfg.seq + 1;
  const tokens = new Int32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let x = ((step * 7919 + (rank * rows + r) * 104729) ^ 0x5bd1e995) >>> 0;
    for (let t = 0; t < cols; t++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      tokens[r * cols + t] = t < PERIOD ? (x >>> 16) % cfg.vocab : tokens[r * cols + t - PERIOD];
    }
  }
  return { tokens, rows, cols };
}

/** One rank of the mixer's expert-parallel training, as an actor. */
export class MixerRank {
  #model: Model | undefined;
  #opt: AdamW | undefined;
  #comm: Awaited<ReturnType<typeof joinGroup>> | undefined;
  #rank = 0;

  /** Joins the group, builds this rank's replica (dense parameters, its experts) and AdamW. */
  async setup(rank: number, size: number, groupId: string): Promise<void> {
    await setupBackend("wasm");
    this.#rank = rank;
    this.#comm = await joinGroup(groupId);
    this.#model = createModel(mixer(), { rank, size, seed: 1 });
    this.#opt = new AdamW(this.#model.params, { lr: 1e-2, weightDecay: 0 });
  }

  /** One training step on this rank's share of global batch `step`. */
  async train(step: number, rows: number): Promise<{ loss: number; hidden: number | null }> {
    const res = await trainStep(this.#model!, copyBatch(step, this.#rank, rows), {
      comm: this.#comm,
    });
    this.#opt!.update(res.grads);
    tf.dispose([...res.grads.values()]);
    return { loss: res.loss, hidden: res.overlap?.hiddenFraction ?? null };
  }
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--steps");
  const steps = at >= 0 ? Number(Deno.args[at + 1]) : 40;
  if (Deno.args.includes("--explain")) console.log(explainOverlap(mixer()));
  await init({ cluster: "local" });
  try {
    const Rank = remote<typeof MixerRank>(import.meta.url, "MixerRank");
    const ranks = await Promise.all([0, 1].map(() => Rank.remote()));
    createGroup(ranks, { groupId: "mixer" });
    await get(ranks.map((r, rank) => r.setup(rank, 2, "mixer")));
    const losses: number[] = [];
    const hidden: number[] = [];
    for (let step = 0; step < steps; step++) {
      const results = await get(ranks.map((r) => r.train(step, 4)));
      losses.push(results[0].loss);
      // Once the scheduler has profiled and decided (after its first steps).
      if (step >= 5) hidden.push(...results.flatMap((x) => x.hidden === null ? [] : [x.hidden]));
    }
    hidden.sort((a, b) => a - b);
    console.log(JSON.stringify({
      firstLoss: losses[0],
      loss: losses.at(-1),
      hiddenFraction: hidden.length ? hidden[hidden.length >> 1] : null,
    }));
  } finally {
    await shutdown();
  }
}
