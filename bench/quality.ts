/**
 * `deno task bench quality [--json] [--quick]`: trains every variant with the
 * same seed, data, shapes and steps on 2 local ranks and prints the final
 * validation loss and perplexity beside the paper's figures. The paper's
 * numbers are GPT-2-scale models on web text with a BPE vocabulary; ours are
 * byte-level models of a few hundred thousand parameters on the Brown corpus,
 * so compare the ordering of the variants, not the values.
 *
 * Full: the tiny preset (120 steps of 16x64 bytes), 30-60 s a variant on 2
 * shared cores (about 7 minutes in all). `--quick`: 30 steps of 8x32 bytes,
 * about 10 s a variant (80 s in all); a smoke run, as every variant is still
 * at the unigram plateau (loss about 3.24) after 30 steps.
 *
 * @module
 */
import { type BenchRow, printRows } from "./output.ts";
import { trainWithArgs } from "../cli/train.ts";
import { parseCommand, usage } from "../cli/flags.ts";
import { QUALITY_COMMAND } from "./commands.ts";

/** The variants compared, as `case` names, with their `deno task train` flags. */
export const QUALITY_CASES: Readonly<Record<string, readonly string[]>> = {
  dense: ["--variant", "dense"],
  top1: ["--variant", "top1"],
  top2: ["--variant", "top2"],
  se: ["--variant", "se"],
  dgmoe: ["--variant", "dgmoe"],
  "scmoe-pos1": ["--variant", "scmoe", "--pos", "1"],
  "scmoe-pos2": ["--variant", "scmoe", "--pos", "2"],
  "scmoe-pos3": ["--variant", "scmoe", "--pos", "3"],
  "dgmoe-share": ["--variant", "dgmoe", "--moe-share", "2"],
};

/**
 * The ScMoE paper's figures (arXiv:2404.05019): GPT-2 MoE final validation
 * loss; WikiText-103 perplexity (GPT2-MoE small).
 */
const PAPER: Record<string, { loss?: number; ppl?: number }> = {
  top2: { loss: 3.2704, ppl: 31.60 },
  se: { loss: 3.2406, ppl: 29.15 },
  dgmoe: { ppl: 31.52 },
  "scmoe-pos1": { loss: 3.2375 },
  "scmoe-pos2": { loss: 3.2248, ppl: 29.10 },
  "scmoe-pos3": { loss: 3.2413 },
};

const QUICK = ["--steps", "30", "--batch", "8", "--seq", "32", "--eval-every", "0"];

/**
 * Runs the benchmark; `args` may hold `--json` and `--quick`
 * ({@linkcode QUALITY_COMMAND}); `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runQualityBench(args: string[]): Promise<void> {
  const f = parseCommand(QUALITY_COMMAND, args);
  if (f.help) return console.log(usage(QUALITY_COMMAND));
  const json = f.has("json"), quick = f.has("quick");
  const root = `runs/quality-${quick ? "quick-" : ""}${
    new Date().toISOString().replace(/[-:]|\.\d+Z$/g, "")
  }`;
  const rows: BenchRow[] = [];
  const losses: Record<string, number> = {};
  const names = Object.keys(QUALITY_CASES);
  for (const [i, name] of names.entries()) {
    const r = await trainWithArgs([
      ...QUALITY_CASES[name],
      ...(quick ? QUICK : []),
      "--seed",
      "1",
      "--out",
      `${root}/${name}`,
    ], { checkpoints: false, verbose: false });
    losses[name] = r.valLoss;
    console.error(
      `quality: ${name} (${i + 1}/${names.length}) validation loss ${r.valLoss.toFixed(4)} ` +
        `after ${r.steps} steps in ${r.wallS.toFixed(0)} s`,
    );
    const paper = PAPER[name] ?? {};
    const row = (metric: string, value: number, unit: string, reference?: number) =>
      rows.push({
        bench: "quality",
        case: name,
        metric,
        value,
        unit,
        ...(reference === undefined ? {} : { reference: `paper ${reference}` }),
      });
    row("val_loss", r.valLoss, "nats/byte", paper.loss);
    row("val_ppl", r.valPpl, "per byte", paper.ppl);
    row("steps", r.steps, "steps");
  }
  for (const name of names) {
    const ref = PAPER[name]?.loss;
    rows.push({
      bench: "quality",
      case: name,
      metric: "val_loss_vs_top2",
      value: losses[name] - losses.top2,
      unit: "nats/byte",
      ...(ref === undefined ? {} : { reference: `paper ${(ref - PAPER.top2.loss!).toFixed(4)}` }),
    });
  }
  if (!json) {
    console.log(
      "validation loss of every variant, same seed, data and steps (outputs in " + root + ");\n" +
        "paper: GPT-2 MoE (loss) and WikiText-103 (perplexity), BPE tokens: compare the order",
    );
  }
  printRows(rows, json);
}
