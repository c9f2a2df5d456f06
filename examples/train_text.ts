/**
 * Your own training script on your own text file: ScMoE Pos-2 on 2 rank
 * actors, trained half-way with a checkpoint, resumed from it to the end,
 * then the final checkpoint reloaded on 1 rank (its experts re-sharded) and
 * evaluated again.
 *
 * ```sh
 * deno run -A --v8-flags=--initial-heap-size=128 examples/train_text.ts my_corpus.txt
 * deno run -A --v8-flags=--initial-heap-size=128 examples/train_text.ts my_corpus.txt \
 *   --cluster nats://10.0.0.1:4222 --out runs/mine --steps 200
 * ```
 *
 * With a `nats://` URL the ranks run on the host agents there (`deno task
 * agent --nats URL` on each host; the text file must be at the same path on
 * every host). It prints one JSON line: the first step's loss, the
 * validation loss at the half-way checkpoint and at the end, and the end
 * checkpoint's loss evaluated again on 1 rank.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Cluster, evaluateCheckpoint, train, type TrainSettings } from "@scmoe/actors";

const { values, positionals } = parseArgs({
  options: {
    cluster: { type: "string", default: "local" },
    out: { type: "string", default: `runs/text-${Date.now()}` },
    steps: { type: "string", default: "40" },
  },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error("usage: train_text.ts FILE [--cluster C] [--out DIR] [--steps N]");
  Deno.exit(2);
}
const steps = Number(values.steps);
const settings: TrainSettings = {
  variant: "scmoe",
  pos: 2,
  data: { kind: "text", path: positionals[0] },
  ranks: 2,
  cluster: values.cluster as Cluster,
  batch: 8,
  seq: 32,
  lr: 3e-3,
  evalEvery: 0,
  out: values.out,
};

// The first half, with its checkpoint; then the same run resumed from it to the end.
const half = await train({ ...settings, steps: steps / 2 }, { verbose: false });
const full = await train({ ...settings, steps, resume: true }, { verbose: false });
const [first] = (await Deno.readTextFile(`${values.out}/metrics.jsonl`)).split("\n");
const firstLoss = JSON.parse(first).loss;
const reloaded = await evaluateCheckpoint({ checkpoint: values.out, ranks: 1 });
console.log(JSON.stringify({
  firstLoss,
  halfValLoss: half.valLoss,
  valLoss: full.valLoss,
  reloadedValLoss: reloaded,
  checkpoint: full.checkpoint,
}));
