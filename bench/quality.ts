/**
 * `deno task bench quality`: does the shortcut cost quality? Every variant
 * is trained with the same seeds, data and steps, and compared with top-2
 * seed by seed.
 *
 * - Paired seeds: seed s gives every variant the same data order (the
 *   training windows are a function of the seed only), the same initial
 *   values of every parameter they share (initial values are a function of
 *   (seed, name) only; `tests/quality_model_options.test.ts`), and the same
 *   gate noise for gates of the same name. The validation split is fixed
 *   (split seed 1) and two Brown genres, government documents (`h`) and
 *   humor (`r`), are held out whole as a second text (`heldout_loss`), so
 *   the figures are not tuned to one split.
 * - Per variant: the mean and sample standard deviation of the validation
 *   loss over the seeds, and the paired difference to top-2 with its 95%
 *   t-interval over the seeds' differences (`delta_vs_top2`,
 *   `delta_vs_top2_ci95_low`, `..._high`); the same on the held-out text.
 * - Routing health per variant and gate use: the coefficient of variation
 *   of the experts' demand and the drop rate, in training (noise, training
 *   capacity; over the last quarter of the steps) and at each validation
 *   (no noise, evaluation capacity), and how they evolve; the loss spikes
 *   and expert collapses each run flagged.
 * - The balancing-loss convention of the main table (`--aux-convention`,
 *   default `sum`, the paper's reading), and the same runs under the other
 *   convention to see whether it changes the ranking.
 * - DGMoE-Share (DGMoE with one gate and expert set shared by both MoE
 *   blocks) with its parameter count beside its loss.
 * - The paper's claims, each with its interval and a verdict.
 *
 * Each run is a `deno task train` process on 1 rank holding every expert
 * (the same math as N ranks, `tests/models_parallel.test.ts`; capacity is
 * per step's batch), `--jobs` of them at a time: on 2 cores two 1-rank
 * processes train about 1.9 times as many steps per second as one 2-rank
 * run, which spends part of each step in all-to-alls and waits.
 *
 * The paper's numbers are GPT-2-scale models on web text with a BPE
 * vocabulary; ours are byte-level models of a few hundred thousand
 * parameters on the Brown corpus: compare the order and the signs, not the
 * values (a BPE token is about 4 bytes, so a per-token difference is about
 * 4 times the per-byte one).
 *
 * @module
 */
import { type BenchRow, formatFigure, printRows } from "./output.ts";
import { parseCommand, type ParsedFlags, usage, UsageError } from "../cli/flags.ts";
import { fromFlag, QUALITY_COMMAND } from "./commands.ts";
import { type CodeVersion, codeVersion } from "../training/version.ts";
import { parseTrainArgs } from "../cli/train.ts";
import { modelConfigOf, resolveTrainConfig } from "../training/config.ts";
import { paramSpecs } from "../models/gpt.ts";
import type { AuxConvention } from "../models/steps.ts";
import {
  type Interval,
  mean,
  median,
  sampleStd,
  studentTQuantile,
  tInterval,
} from "../models/stats.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";

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
export const PAPER: Readonly<Record<string, { loss?: number; ppl?: number }>> = {
  top2: { loss: 3.2704, ppl: 31.60 },
  se: { loss: 3.2406, ppl: 29.15 },
  dgmoe: { ppl: 31.52 },
  "scmoe-pos1": { loss: 3.2375 },
  "scmoe-pos2": { loss: 3.2248, ppl: 29.10 },
  "scmoe-pos3": { loss: 3.2413 },
};

/** Brown genres held out of training and validation: government documents and humor. */
export const HELDOUT_CATEGORIES = ["h", "r"] as const;

/**
 * The margin of "close" and "at least as good" in nats per byte: a
 * difference whose 95% interval stays within it counts as no worse (or as
 * close). About 1% of the losses here; the paper's differences to top-2
 * (0.03-0.05 nats per BPE token) are about 0.01 per byte.
 */
export const MARGIN = 0.02;

/**
 * Training steps of a full run by default: the shortest length at which
 * the paired seeds decide the paper's main claim here (at 150 steps the
 * seeds' plateau exits left every claim undecided).
 */
export const DEFAULT_STEPS = 300;
/** Paired seeds per variant by default (the fewest the issue allows; 45 minutes hold 3). */
export const DEFAULT_SEEDS = 3;
/** Seeds run again under the other convention by default. */
export const DEFAULT_OTHER_SEEDS = 1;

/** How a benchmark is run: what `--quick`, `--seeds`, ... resolve to. */
export interface QualitySettings {
  /** Paired seeds per variant (1..seeds). */
  seeds: number;
  /** Seeds run again under the other convention (0: not run). */
  otherSeeds: number;
  /** Training steps of every run. */
  steps: number;
  /** Extra `train` flags of every run (the quick mode's batch and sequence). */
  extra: string[];
  /** Validation passes: every `evalEvery` steps and at the end. */
  evalEvery: number;
  /** The convention of the main table. */
  convention: AuxConvention;
  /** Runs at once. */
  jobs: number;
  /** The variants run. */
  cases: string[];
  /** Where the runs' folders go. */
  runs: string;
  /** The smoke run. */
  quick: boolean;
}

/** The settings a command line asks for. */
export function qualitySettings(
  f: ParsedFlags,
  now = new Date(),
): QualitySettings {
  const quick = f.has("quick");
  const seeds = f.integer("seeds", quick ? 2 : DEFAULT_SEEDS, 2);
  const steps = f.integer("steps", quick ? 40 : DEFAULT_STEPS, 1);
  const convention = f.choice("aux-convention", ["sum", "mean"], "sum") as AuxConvention;
  const known = Object.keys(QUALITY_CASES);
  const listed = f.has("cases")
    ? f.string("cases")!.split(",").map((c) => c.trim()).filter((c) => c !== "")
    : known;
  const unknown = listed.find((c) => !known.includes(c));
  if (unknown !== undefined || listed.length === 0) {
    throw new UsageError(
      `--cases must be variants separated by commas, of ${known.join(", ")} ` +
        `(got ${JSON.stringify(f.string("cases"))})`,
    );
  }
  const cases = known.filter((c) => c === "top2" || listed.includes(c));
  const stamp = now.toISOString().replace(/[-:]|\.\d+Z$/g, "");
  return {
    seeds,
    otherSeeds: f.integer("other-seeds", DEFAULT_OTHER_SEEDS, 0, seeds),
    steps,
    extra: quick ? ["--batch", "8", "--seq", "32"] : [],
    evalEvery: Math.max(1, Math.round(steps / 4)),
    convention,
    jobs: f.integer("jobs", 2, 1),
    cases,
    runs: f.string("runs") ?? `runs/quality-${quick ? "quick-" : ""}${stamp}`,
    quick,
  };
}

/** One training run of the benchmark. */
export interface PlannedRun {
  /** The variant. */
  case: string;
  /** Its seed. */
  seed: number;
  /** Its balancing-loss convention. */
  convention: AuxConvention;
  /** Its output folder. */
  out: string;
  /** Its `deno task train` command line. */
  args: string[];
}

/** The other convention. */
export function otherConvention(c: AuxConvention): AuxConvention {
  return c === "sum" ? "mean" : "sum";
}

/**
 * Every run of a benchmark, in the order they start: seed by seed (so the
 * first seeds of every variant finish first), the main convention before
 * the other. Runs of one seed differ in their variant flags only; dense has
 * no balancing loss, so it is not run again under the other convention.
 */
export function qualityPlan(s: QualitySettings): PlannedRun[] {
  const runs: PlannedRun[] = [];
  const add = (name: string, seed: number, convention: AuxConvention) => {
    const out = `${s.runs}/${convention}/${name}/seed-${seed}`;
    runs.push({
      case: name,
      seed,
      convention,
      out,
      args: [
        ...QUALITY_CASES[name],
        ...s.extra,
        "--steps",
        `${s.steps}`,
        "--seed",
        `${seed}`,
        "--ranks",
        "1",
        "--heldout",
        HELDOUT_CATEGORIES.join(","),
        "--split-seed",
        "1",
        "--eval-every",
        `${s.evalEvery}`,
        "--aux-convention",
        convention,
        "--out",
        out,
      ],
    });
  };
  for (let seed = 1; seed <= s.seeds; seed++) {
    for (const name of s.cases) add(name, seed, s.convention);
  }
  for (let seed = 1; seed <= s.otherSeeds; seed++) {
    for (const name of s.cases) {
      if (name !== "dense") add(name, seed, otherConvention(s.convention));
    }
  }
  return runs;
}

/** Parameters of a variant's whole model (every expert), from its `train` flags. */
export function variantParams(name: string): number {
  const cfg = modelConfigOf(resolveTrainConfig(parseTrainArgs([...QUALITY_CASES[name]]).settings));
  return paramSpecs(cfg).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** One gate use's routing at one validation of a run. */
export interface GatePoint {
  /** The step of the validation. */
  step: number;
  /** Load CV in training, averaged over the steps since the previous validation. */
  loadCv: number;
  /** Drop rate in training, averaged the same way. */
  dropRate: number;
  /** Load CV of the validation pass (no noise). */
  evalLoadCv: number;
  /** Drop rate of the validation pass (evaluation capacity). */
  evalDropRate: number;
}

/** What one finished (or failed) run gave. */
export interface RunResult {
  /** The variant. */
  case: string;
  /** Its seed. */
  seed: number;
  /** Its convention. */
  convention: AuxConvention;
  /** Final validation loss (NaN when it failed). */
  valLoss: number;
  /** Final loss on the held-out genres. */
  heldoutLoss: number;
  /** Median step time, ms. */
  stepMs: number;
  /** Seconds the run took, startup and validation included. */
  wallS: number;
  /** Spikes the run flagged: steps and reasons. */
  spikes: { step: number; reason: string; loss: number; gradNorm: number }[];
  /** Expert collapses the run flagged. */
  collapses: { gate: string; expert: number; from: number; to: number }[];
  /** Per gate use, its routing at each validation. */
  gates: Record<string, GatePoint[]>;
  /**
   * The first step whose training loss fell below {@linkcode PLATEAU_EXIT}:
   * when the run left the unigram plateau (null: it never did).
   */
  plateauExit?: number | null;
  /** Why it failed, when it did. */
  error?: string;
}

/**
 * A training loss below this (nats/byte) has left the unigram plateau
 * (about 3.24 on the Brown corpus, where every variant first sits).
 */
export const PLATEAU_EXIT = 3.0;

/** Reads a finished run's folder: its summary and its metrics' routing. */
export async function readRun(run: PlannedRun): Promise<RunResult> {
  const summary = JSON.parse(await Deno.readTextFile(`${run.out}/summary.json`));
  const lines = (await Deno.readTextFile(`${run.out}/metrics.jsonl`)).split("\n")
    .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  return {
    case: run.case,
    seed: run.seed,
    convention: run.convention,
    valLoss: summary.val_loss ?? NaN,
    heldoutLoss: summary.heldout_loss ?? NaN,
    stepMs: summary.step_ms ?? NaN,
    wallS: summary.wall_s ?? NaN,
    spikes: (summary.spikes ?? []).map((
      s: { step: number; reason: string; loss: number; gradNorm: number },
    ) => ({ step: s.step, reason: s.reason, loss: s.loss, gradNorm: s.gradNorm })),
    collapses: summary.collapses ?? [],
    gates: routingEvolution(lines),
    plateauExit: lines.find((l) => l.loss < PLATEAU_EXIT)?.step ?? null,
  };
}

type GateLine = { name: string; load_cv: number; drop_rate: number };

/**
 * Per gate use, its routing at each validation of a run's metrics lines:
 * the validation pass's CV and drop rate, and the training steps' averaged
 * since the previous validation.
 */
export function routingEvolution(
  lines: readonly { step: number; gates?: GateLine[]; val_gates?: GateLine[] }[],
): Record<string, GatePoint[]> {
  const out: Record<string, GatePoint[]> = {};
  let since: GateLine[][] = [];
  for (const line of lines) {
    if (line.gates) since.push(line.gates);
    if (!line.val_gates) continue;
    for (const v of line.val_gates) {
      const train = since.map((g) => g.find((x) => x.name === v.name)).filter((g) => g);
      (out[v.name] ??= []).push({
        step: line.step,
        loadCv: train.length ? mean(train.map((g) => g!.load_cv)) : NaN,
        dropRate: train.length ? mean(train.map((g) => g!.drop_rate)) : NaN,
        evalLoadCv: v.load_cv,
        evalDropRate: v.drop_rate,
      });
    }
    since = [];
  }
  return out;
}

/** A mean and sample standard deviation over seeds. */
export interface Spread {
  /** Mean over the seeds. */
  mean: number;
  /** Sample standard deviation (0 with one seed). */
  std: number;
}

function spread(xs: number[]): Spread {
  const ok = xs.filter(Number.isFinite);
  return ok.length ? { mean: mean(ok), std: sampleStd(ok) } : { mean: NaN, std: NaN };
}

/** One variant's figures under one convention. */
export interface CaseFigures {
  /** The variant. */
  case: string;
  /** Seeds that finished. */
  seeds: number[];
  /** Validation loss over the seeds. */
  valLoss: Spread;
  /** Held-out-genre loss over the seeds. */
  heldoutLoss: Spread;
  /** Validation loss minus top-2's, paired by seed, with its 95% interval; null for top-2. */
  delta: Interval | null;
  /** The same on the held-out text. */
  heldoutDelta: Interval | null;
  /** Its rank by mean validation loss among all variants (1: lowest). */
  rank: number;
}

/** One gate use's routing, averaged over the seeds. */
export interface GateFigures {
  /** The gate use. */
  name: string;
  /** Its routing at each validation, averaged over the seeds. */
  points: GatePoint[];
}

/** Health of a variant's runs under the main convention. */
export interface CaseHealth {
  /** The variant. */
  case: string;
  /** Training load CV at the end, mean over gate uses and seeds. */
  loadCv: number;
  /** Training drop rate at the end. */
  dropRate: number;
  /** Load CV of the final validation. */
  evalLoadCv: number;
  /** Drop rate of the final validation (evaluation capacity). */
  evalDropRate: number;
  /** Spikes flagged, over all seeds. */
  spikes: number;
  /** Steps of the spikes, `seed:step`. */
  spikeSteps: string[];
  /** Collapses flagged, over all seeds. */
  collapses: number;
  /** Median step time over the seeds, ms. */
  stepMs: number;
  /** Each seed's plateau exit step (null: never), by seed order. */
  plateauExits: (number | null)[];
  /** Per gate use. */
  gates: GateFigures[];
}

/** A claim of the paper checked here. */
export interface Claim {
  /** The claim, as the paper puts it. */
  claim: string;
  /** What the intervals say. */
  verdict: "holds" | "does not hold" | "inconclusive";
  /** The comparisons, each `label: mean [low, high]`, and a reason when found. */
  detail: string;
}

/** Everything the benchmark found. */
export interface QualityResult {
  /** How it was run. */
  settings: QualitySettings;
  /** Parameters of each variant's whole model. */
  params: Record<string, number>;
  /** Per variant, under the main convention. */
  main: CaseFigures[];
  /** Per variant, under the other convention (empty when not run). */
  other: CaseFigures[];
  /**
   * Per variant, under the main convention but over the seeds the other
   * convention ran (1..otherSeeds): what `other` is compared with.
   */
  mainOnOtherSeeds: CaseFigures[];
  /** Routing health per variant (main convention). */
  health: CaseHealth[];
  /**
   * The variants by mean validation loss, lowest first: under the main
   * convention, under the other, and under the main over the other's seeds.
   */
  ranking: { main: string[]; other: string[]; mainOnOtherSeeds: string[] };
  /** The paper's claims. */
  claims: Claim[];
  /** Runs that failed, with why. */
  failures: string[];
  /** Every run, as read from its folder. */
  runs: readonly RunResult[];
  /** Seconds the benchmark took. */
  wallS: number;
  /** The code that ran (package and git commit), when known. */
  code: CodeVersion | null;
}

/** The figures of every variant under one convention. */
export function caseFigures(
  results: readonly RunResult[],
  cases: readonly string[],
): CaseFigures[] {
  const ok = results.filter((r) => !r.error && Number.isFinite(r.valLoss));
  const of = (name: string) => ok.filter((r) => r.case === name);
  const top2 = new Map(of("top2").map((r) => [r.seed, r]));
  const figures = cases.filter((c) => of(c).length > 0).map((name): CaseFigures => {
    const mine = of(name);
    const paired = mine.filter((r) => top2.has(r.seed));
    const diff = (key: "valLoss" | "heldoutLoss") =>
      name === "top2" || paired.length === 0
        ? null
        : tInterval(paired.map((r) => r[key] - top2.get(r.seed)![key]));
    return {
      case: name,
      seeds: mine.map((r) => r.seed),
      valLoss: spread(mine.map((r) => r.valLoss)),
      heldoutLoss: spread(mine.map((r) => r.heldoutLoss)),
      delta: diff("valLoss"),
      heldoutDelta: diff("heldoutLoss"),
      rank: 0,
    };
  });
  const order = figures.toSorted((a, b) => a.valLoss.mean - b.valLoss.mean);
  order.forEach((f, i) => f.rank = i + 1);
  return figures;
}

/** The routing health of every variant's runs. */
export function caseHealth(results: readonly RunResult[], cases: readonly string[]): CaseHealth[] {
  const ok = results.filter((r) => !r.error);
  return cases.map((name): CaseHealth => {
    const mine = ok.filter((r) => r.case === name);
    const names = [...new Set(mine.flatMap((r) => Object.keys(r.gates)))];
    const gates = names.map((g): GateFigures => {
      const series = mine.map((r) => r.gates[g] ?? []);
      const steps = [...new Set(series.flatMap((s) => s.map((p) => p.step)))].sort((a, b) => a - b);
      return {
        name: g,
        points: steps.map((step) => {
          const at = series.map((s) => s.find((p) => p.step === step)).filter((p) => p);
          const avg = (k: keyof GatePoint) => mean(at.map((p) => p![k]));
          return {
            step,
            loadCv: avg("loadCv"),
            dropRate: avg("dropRate"),
            evalLoadCv: avg("evalLoadCv"),
            evalDropRate: avg("evalDropRate"),
          };
        }),
      };
    });
    const last = gates.map((g) => g.points.at(-1)).filter((p) => p) as GatePoint[];
    const avg = (k: keyof GatePoint) => last.length ? mean(last.map((p) => p[k])) : NaN;
    return {
      case: name,
      loadCv: avg("loadCv"),
      dropRate: avg("dropRate"),
      evalLoadCv: avg("evalLoadCv"),
      evalDropRate: avg("evalDropRate"),
      spikes: mine.reduce((n, r) => n + r.spikes.length, 0),
      spikeSteps: mine.flatMap((r) => r.spikes.map((s) => `${r.seed}:${s.step}`)),
      collapses: mine.reduce((n, r) => n + r.collapses.length, 0),
      stepMs: mine.length ? median(mine.map((r) => r.stepMs)) : NaN,
      plateauExits: mine.map((r) => r.plateauExit ?? null),
      gates,
    };
  });
}

/** `0.0123 [-0.0045, 0.0291]`. */
export function formatInterval(i: Interval | null): string {
  if (!i) return "–";
  const f = (x: number) => Number.isFinite(x) ? x.toFixed(4) : "–";
  return `${f(i.mean)} [${f(i.low)}, ${f(i.high)}]`;
}

/** The paired interval of `a - b` over the seeds both finished. */
export function pairedInterval(
  results: readonly RunResult[],
  a: string,
  b: string,
): Interval | null {
  const ok = results.filter((r) => !r.error && Number.isFinite(r.valLoss));
  const bs = new Map(ok.filter((r) => r.case === b).map((r) => [r.seed, r.valLoss]));
  const diffs = ok.filter((r) => r.case === a && bs.has(r.seed)).map((r) =>
    r.valLoss - bs.get(r.seed)!
  );
  return diffs.length ? tInterval(diffs) : null;
}

/**
 * The paper's claims against paired intervals (`MARGIN` nats/byte):
 * ScMoE at least as good as top-2 (the interval of ScMoE − top-2 ends at or
 * below +margin; fails when it lies above 0); SE and DGMoE close to top-2
 * (the interval inside ±margin; fails when it lies outside); top-1 the worst
 * MoE (top-1 − each other MoE variant above 0; fails when one lies below 0);
 * DGMoE-Share a small loss for fewer parameters (DGMoE-Share − DGMoE ends at
 * or below +margin; fails when it lies above the margin).
 */
export function checkClaims(
  results: readonly RunResult[],
  health: readonly CaseHealth[],
  params: Record<string, number>,
  cases: readonly string[],
): Claim[] {
  const claims: Claim[] = [];
  const has = (c: string) => cases.includes(c) && results.some((r) => r.case === c && !r.error);
  const label = (a: string, b: string, i: Interval | null) => `${a} − ${b}: ${formatInterval(i)}`;
  const droppy = (c: string) => {
    const h = health.find((x) => x.case === c), t = health.find((x) => x.case === "top2");
    if (!h || !t || !(h.evalDropRate > t.evalDropRate + 0.02)) return "";
    return ` ${c} drops ${(100 * h.evalDropRate).toFixed(1)}% of its assignments at ` +
      `evaluation capacity (top-2: ${(100 * t.evalDropRate).toFixed(1)}%; load CV ` +
      `${h.evalLoadCv.toFixed(2)} without gate noise), which costs it loss at validation.`;
  };
  /**
   * Why intervals are too wide to decide: their half-widths against the
   * margin, and the involved runs' loss spikes after the first 40 steps
   * (the early ones, leaving the plateau, heal).
   */
  const why = (intervals: (Interval | null)[], involved: string[]) => {
    const halves = intervals.filter((i) => i && Number.isFinite(i.high)).map((i) =>
      (i!.high - i!.low) / 2
    );
    if (halves.length === 0) return " Inconclusive: fewer than 2 paired seeds.";
    const late = results.filter((r) => involved.includes(r.case) && !r.error).flatMap((r) =>
      r.spikes.filter((x) => x.step > 40).map((x) =>
        `${r.case} seed ${r.seed} step ${x.step} (loss ${x.loss.toFixed(2)})`
      )
    );
    const exits = results.filter((r) => involved.includes(r.case) && !r.error)
      .map((r) => r.plateauExit).filter((e): e is number => typeof e === "number");
    const fit = plateauFit(results);
    return ` Inconclusive: the intervals are ±${Math.min(...halves).toFixed(3)} to ` +
      `±${Math.max(...halves).toFixed(3)} wide against a margin of ${MARGIN}, as the seeds ` +
      `disagree (a variant's validation loss varies by up to ${
        Math.max(...involved.map((c) => spreadOf(c))).toFixed(3)
      } between seeds) and ${intervals[0]?.n ?? 0} seeds leave ${
        Math.max(0, (intervals[0]?.n ?? 1) - 1)
      } degrees of freedom.` +
      (exits.length && fit
        ? ` The seeds disagree on when they leave the unigram plateau (training loss first ` +
          `below ${PLATEAU_EXIT} at step ${Math.min(...exits)} to ${Math.max(...exits)} in ` +
          `these runs), and the final loss follows that step (over all ${fit.n} runs r = ` +
          `${fit.r.toFixed(2)}, ${(10 * fit.slope).toFixed(3)} nats per 10 steps later).`
        : "") +
      (late.length ? ` Spikes after step 40: ${late.join(", ")}.` : "");
  };
  const spreadOf = (c: string) => {
    const xs = results.filter((r) => r.case === c && !r.error).map((r) => r.valLoss);
    return xs.length ? Math.max(...xs) - Math.min(...xs) : 0;
  };
  const scmoe = ["scmoe-pos2", "scmoe-pos1", "scmoe-pos3"].filter(has);
  if (has("top2") && scmoe.length) {
    const parts = scmoe.map((c) => ({ c, i: pairedInterval(results, c, "top2") }));
    const main = parts[0];
    const verdict = !main.i || Number.isNaN(main.i.high)
      ? "inconclusive"
      : main.i.high <= MARGIN
      ? "holds"
      : main.i.low > 0
      ? "does not hold"
      : "inconclusive";
    claims.push({
      claim: "ScMoE (Pos-2, CG-1) is at least as good as top-2",
      verdict,
      detail: parts.map(({ c, i }) => label(c, "top2", i)).join("; ") +
        `. Holds when the interval of ${main.c} − top2 ends at or below +${MARGIN}` +
        ` (no worse by more than the margin), fails when it lies above 0.` +
        (verdict === "does not hold" ? droppy(main.c) : "") +
        (verdict === "inconclusive" ? why(parts.map((p) => p.i), ["top2", ...scmoe]) : ""),
    });
  }
  const close = ["se", "dgmoe"].filter(has);
  if (has("top2") && close.length) {
    const parts = close.map((c) => ({ c, i: pairedInterval(results, c, "top2") }));
    const inside = (i: Interval | null) => i && i.low >= -MARGIN && i.high <= MARGIN;
    const outside = (i: Interval | null) => i && (i.low > MARGIN || i.high < -MARGIN);
    const verdict = parts.every((p) => inside(p.i))
      ? "holds"
      : parts.some((p) => outside(p.i))
      ? "does not hold"
      : "inconclusive";
    claims.push({
      claim: "The shared expert (SE) and DGMoE are close to top-2",
      verdict,
      detail: parts.map(({ c, i }) => label(c, "top2", i)).join("; ") +
        `. Holds when each interval lies inside ±${MARGIN}, fails when one lies outside.` +
        parts.filter((p) => outside(p.i)).map((p) => droppy(p.c)).join("") +
        (verdict === "inconclusive" ? why(parts.map((p) => p.i), ["top2", ...close]) : ""),
    });
  }
  const others = ["top2", "se", "dgmoe", "scmoe-pos1", "scmoe-pos2", "scmoe-pos3"].filter(has);
  if (has("top1") && others.length) {
    const parts = others.map((c) => ({ c, i: pairedInterval(results, "top1", c) }));
    const verdict = parts.every((p) => p.i && p.i.low > 0)
      ? "holds"
      : parts.some((p) => p.i && p.i.high < 0)
      ? "does not hold"
      : "inconclusive";
    const better = parts.filter((p) => p.i && p.i.high < 0).map((p) => p.c);
    claims.push({
      claim: "Top-1 is the worst MoE variant",
      verdict,
      detail: parts.map(({ c, i }) => label("top1", c, i)).join("; ") +
        ". Holds when every interval lies above 0, fails when one lies below 0" +
        (better.length ? ` (top-1 is better than ${better.join(", ")})` : "") + "." +
        (verdict === "inconclusive" ? why(parts.map((p) => p.i), ["top1", ...others]) : ""),
    });
  }
  if (has("dgmoe") && has("dgmoe-share")) {
    const i = pairedInterval(results, "dgmoe-share", "dgmoe");
    const verdict = !i || Number.isNaN(i.high)
      ? "inconclusive"
      : i.high <= MARGIN
      ? "holds"
      : i.low > MARGIN
      ? "does not hold"
      : "inconclusive";
    const ratio = params["dgmoe-share"] / params.dgmoe;
    claims.push({
      claim: "DGMoE-Share costs a small quality loss for fewer parameters",
      verdict,
      detail: `${label("dgmoe-share", "dgmoe", i)} with ${params["dgmoe-share"]} parameters ` +
        `against ${params.dgmoe} (${(100 * ratio).toFixed(0)}%). Holds when the interval ` +
        `ends at or below +${MARGIN}, fails when it lies above it.` +
        (verdict === "inconclusive" ? why([i], ["dgmoe", "dgmoe-share"]) : ""),
    });
  }
  return claims;
}

/**
 * How the final validation loss follows the plateau exit over every run:
 * the correlation r and the least-squares slope (nats per step); null with
 * fewer than 3 runs that left the plateau.
 */
export function plateauFit(
  results: readonly RunResult[],
): { n: number; r: number; slope: number } | null {
  const pts = results.filter((r) =>
    !r.error && typeof r.plateauExit === "number" && Number.isFinite(r.valLoss)
  ).map((r) => [r.plateauExit as number, r.valLoss]);
  if (pts.length < 3) return null;
  const mx = mean(pts.map((p) => p[0])), my = mean(pts.map((p) => p[1]));
  let sxy = 0, sxx = 0, syy = 0;
  for (const [x, y] of pts) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  }
  if (sxx === 0 || syy === 0) return null;
  return { n: pts.length, r: sxy / Math.sqrt(sxx * syy), slope: sxy / sxx };
}

/** The whole analysis of a benchmark's runs. */
export function summarizeQuality(
  results: readonly RunResult[],
  settings: QualitySettings,
  wallS: number,
  code: CodeVersion | null = null,
): QualityResult {
  const params = Object.fromEntries(settings.cases.map((c) => [c, variantParams(c)]));
  const mainRuns = results.filter((r) => r.convention === settings.convention);
  // Dense has no balancing loss: its runs stand for it under both conventions.
  const otherRuns = results.filter((r) =>
    r.convention !== settings.convention || r.case === "dense"
  );
  const main = caseFigures(mainRuns, settings.cases);
  const otherSeedsOf = (runs: RunResult[]) =>
    settings.otherSeeds > 0
      ? caseFigures(runs.filter((r) => r.seed <= settings.otherSeeds), settings.cases)
      : [];
  const other = otherSeedsOf(otherRuns);
  const mainOnOtherSeeds = otherSeedsOf(mainRuns);
  const health = caseHealth(mainRuns, settings.cases.filter((c) => c !== "dense"));
  const order = (f: CaseFigures[]) =>
    f.toSorted((a, b) => a.valLoss.mean - b.valLoss.mean).map((x) => x.case);
  return {
    settings,
    params,
    main,
    other,
    mainOnOtherSeeds,
    health,
    ranking: {
      main: order(main),
      other: order(other),
      mainOnOtherSeeds: order(mainOnOtherSeeds),
    },
    claims: checkClaims(mainRuns, health, params, settings.cases),
    failures: results.filter((r) => r.error).map((r) =>
      `${r.case} seed ${r.seed} (${r.convention}): ${r.error}`
    ),
    runs: results,
    wallS,
    code,
  };
}

function paperRef(x: number | undefined): string | undefined {
  return x === undefined ? undefined : `paper ${x}`;
}

/** The benchmark's rows (`{bench, case, metric, value, unit}`), as `--json` prints them. */
export function qualityRows(q: QualityResult): BenchRow[] {
  const rows: BenchRow[] = [];
  const row = (c: string, metric: string, value: number | string, unit: string, ref?: string) =>
    rows.push({
      bench: "quality",
      case: c,
      metric,
      value,
      unit,
      ...(ref === undefined ? {} : { reference: ref }),
    });
  const paperDelta = (c: string) => {
    const p = PAPER[c]?.loss, t = PAPER.top2.loss!;
    return p === undefined ? undefined : `paper ${(p - t).toFixed(4)}`;
  };
  for (const f of q.main) {
    const c = f.case;
    row(c, "val_loss", f.valLoss.mean, "nats/byte", paperRef(PAPER[c]?.loss));
    row(c, "val_loss_std", f.valLoss.std, "nats/byte");
    row(
      c,
      "val_ppl",
      Math.exp(f.valLoss.mean),
      "per byte",
      paperRef(PAPER[c]?.ppl),
    );
    if (f.delta) {
      row(c, "delta_vs_top2", f.delta.mean, "nats/byte", paperDelta(c));
      row(c, "delta_vs_top2_ci95_low", f.delta.low, "nats/byte");
      row(c, "delta_vs_top2_ci95_high", f.delta.high, "nats/byte");
    }
    row(c, "heldout_loss", f.heldoutLoss.mean, "nats/byte");
    row(c, "heldout_loss_std", f.heldoutLoss.std, "nats/byte");
    if (f.heldoutDelta) {
      row(c, "heldout_delta_vs_top2", f.heldoutDelta.mean, "nats/byte");
      row(c, "heldout_delta_vs_top2_ci95_low", f.heldoutDelta.low, "nats/byte");
      row(c, "heldout_delta_vs_top2_ci95_high", f.heldoutDelta.high, "nats/byte");
    }
    const h = q.health.find((x) => x.case === c);
    if (h) {
      row(c, "load_cv", h.loadCv, "cv");
      row(c, "drop_rate", h.dropRate, "fraction");
      row(c, "eval_load_cv", h.evalLoadCv, "cv");
      row(c, "eval_drop_rate", h.evalDropRate, "fraction");
      row(c, "spikes", h.spikes, "steps");
      row(c, "collapses", h.collapses, "experts");
      for (const g of h.gates) {
        const p = g.points.at(-1);
        if (!p) continue;
        row(`${c}/${g.name}`, "load_cv", p.loadCv, "cv");
        row(`${c}/${g.name}`, "drop_rate", p.dropRate, "fraction");
        row(`${c}/${g.name}`, "eval_load_cv", p.evalLoadCv, "cv");
        row(`${c}/${g.name}`, "eval_drop_rate", p.evalDropRate, "fraction");
      }
    }
    row(c, "params", q.params[c], "parameters");
    row(c, "seeds", f.seeds.length, "seeds");
    row(c, "steps", q.settings.steps, "steps");
    row(c, "rank", f.rank, "of " + q.main.length);
    row(c, "aux_convention", q.settings.convention, "");
    const o = q.other.find((x) => x.case === c);
    const m = q.mainOnOtherSeeds.find((x) => x.case === c);
    if (o && m) {
      const other = otherConvention(q.settings.convention);
      const seeds = seedsLabel(q.settings.otherSeeds);
      row(c, `val_loss_${q.settings.convention}_same_seeds`, m.valLoss.mean, `nats/byte, ${seeds}`);
      row(c, `rank_${q.settings.convention}_same_seeds`, m.rank, `of ${q.main.length}, ${seeds}`);
      row(c, `val_loss_${other}`, o.valLoss.mean, "nats/byte");
      if (o.delta) {
        row(c, `delta_vs_top2_${other}`, o.delta.mean, "nats/byte");
        row(c, `delta_vs_top2_${other}_ci95_low`, o.delta.low, "nats/byte");
        row(c, `delta_vs_top2_${other}_ci95_high`, o.delta.high, "nats/byte");
      }
      row(c, `rank_${other}`, o.rank, "of " + q.other.length);
    }
  }
  q.claims.forEach((c, i) => row(`claim-${i + 1}`, "verdict", c.verdict, "", c.claim));
  return rows;
}

/** A markdown table. */
function table(header: string[], body: string[][]): string[] {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...body.map((r) => `| ${r.join(" | ")} |`),
  ];
}

const f4 = (x: number) => Number.isFinite(x) ? x.toFixed(4) : "–";
const pct = (x: number) => Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "–";

/**
 * The report's quality section as markdown lines; `level` is the heading
 * level of its subsections (`##` in its own report, `###` inside
 * `bench report`'s).
 */
export function qualityMarkdown(q: QualityResult, level = 2): string[] {
  const h = "#".repeat(level);
  const s = q.settings;
  const other = otherConvention(s.convention);
  const md: string[] = [];
  const wide = q.main.some((f) => f.seeds.length > 0);
  md.push(
    `Byte-level GPTs (the \`tiny\` preset: d=64, 4 blocks, MoE blocks 1 and 3 with 4 experts, ` +
      `${s.quick ? "8x32" : "16x64"} bytes a step) on the Brown corpus, ${s.steps} steps, ` +
      `${s.seeds} paired seeds (seed s: the same data order, initial values of every shared ` +
      `parameter and gate noise for every variant), each run a 1-rank \`deno task train\` ` +
      `process, ${s.jobs} at a time. Validation: 8 batches of a fixed split (split seed 1) of ` +
      `the documents trained on; held-out: 8 batches of two genres never trained on, ` +
      `government documents (\`h\`) and humor (\`r\`). Balancing loss: **${s.convention}** ` +
      `(${
        s.convention === "sum"
          ? "each MoE layer's loss weighted 0.01, the paper's reading"
          : "the mean of the gate uses weighted 0.01"
      }). Intervals: 95% t-intervals over the seeds' paired differences (${
        s.seeds - 1
      } degrees of freedom, t = ${tFactor(s.seeds)}). The paper's figures are GPT-2-scale ` +
      "models with BPE tokens: compare the order and the signs, not the values. " +
      `Took ${(q.wallS / 60).toFixed(1)} minutes` +
      (q.code
        ? ` (code ${q.code.name} ${q.code.version}, commit ${q.code.commit ?? "unknown"}).`
        : "."),
    "",
  );
  if (!wide) return [...md, "No run finished.", ""];
  if (!s.quick) md.push(whyThisSize(q), "");
  md.push(
    `${h} Validation and held-out loss`,
    "",
    ...table(
      [
        "variant",
        "params",
        "val loss (mean ± sd)",
        "− top-2 [95% CI]",
        "paper − top-2",
        "held-out loss",
        "− top-2 [95% CI]",
        "rank",
      ],
      q.main.map((f) => [
        f.case,
        String(q.params[f.case]),
        `${f4(f.valLoss.mean)} ± ${f4(f.valLoss.std)}`,
        formatInterval(f.delta),
        PAPER[f.case]?.loss === undefined
          ? "–"
          : (PAPER[f.case].loss! - PAPER.top2.loss!).toFixed(4),
        `${f4(f.heldoutLoss.mean)} ± ${f4(f.heldoutLoss.std)}`,
        formatInterval(f.heldoutDelta),
        String(f.rank),
      ]),
    ),
    "",
    `${h} The paper's claims`,
    "",
    ...q.claims.flatMap((c) => [`- **${c.claim}: ${c.verdict}.** ${c.detail}`]),
    "",
  );
  if (q.other.length) {
    const same = q.ranking.mainOnOtherSeeds.join(",") === q.ranking.other.join(",");
    const seeds = seedsLabel(s.otherSeeds);
    md.push(
      `${h} The other balancing-loss convention (${other})`,
      "",
      `The MoE variants again with the balancing loss "${other}" (${
        other === "sum"
          ? "each MoE layer's loss weighted 0.01"
          : "the mean over gate uses weighted 0.01: each of the 2 MoE layers gets 0.005"
      }), ${seeds}, beside ${seeds} under ${s.convention} (the main table's means ` +
        `over all ${s.seeds} seeds rank differently by themselves, as the seeds differ); ` +
        `dense has no balancing loss and stands as it is. Ranking by validation loss over ` +
        `${seeds} under ${s.convention}: ${q.ranking.mainOnOtherSeeds.join(" < ")}; under ` +
        `${other}: ${q.ranking.other.join(" < ")}: ${
          same ? "the same order" : "**the order changes**"
        }.`,
      "",
      ...table(
        [
          "variant",
          `val loss (${s.convention})`,
          `val loss (${other})`,
          `${other} − ${s.convention}`,
          `− top-2 (${other}) [95% CI]`,
          `rank (${s.convention} / ${other})`,
        ],
        q.mainOnOtherSeeds.map((m) => {
          const o = q.other.find((x) => x.case === m.case);
          return [
            m.case,
            f4(m.valLoss.mean),
            o ? f4(o.valLoss.mean) : "–",
            o ? f4(o.valLoss.mean - m.valLoss.mean) : "–",
            o ? formatInterval(o.delta) : "–",
            `${m.rank} / ${o?.rank ?? "–"}`,
          ];
        }),
      ),
      "",
    );
  }
  md.push(
    `${h} Routing health`,
    "",
    "Load CV: the coefficient of variation of the experts' demand (tokens that chose each " +
      "expert, before capacity; 0 balanced, 1.73 all on one of 4). Drops: assignments past " +
      "capacity (capacity factor 2 in training and in evaluation). Training figures average the " +
      "steps of the last quarter with gate noise; evaluation figures are the final validation " +
      "pass, without noise. Means over gate uses and seeds. Spikes: steps whose gradient norm " +
      "exceeded 10x the median of the 20 before, or whose loss exceeded the median of the 5 " +
      "before by 1 nat (`seed:step`). Collapses: an expert without a token for 10 steps in a row. " +
      `Plateau left at: each seed's first step with a training loss below ${PLATEAU_EXIT}.`,
    "",
    ...table(
      [
        "variant",
        "load CV (train)",
        "drops (train)",
        "load CV (eval)",
        "drops (eval)",
        "spikes",
        "collapses",
        "plateau left at",
        "ms/step",
      ],
      q.health.map((x) => [
        x.case,
        formatFigure(x.loadCv),
        pct(x.dropRate),
        formatFigure(x.evalLoadCv),
        pct(x.evalDropRate),
        x.spikes ? `${x.spikes} (${x.spikeSteps.join(", ")})` : "0",
        String(x.collapses),
        x.plateauExits.map((e) => e ?? "–").join(", "),
        formatFigure(x.stepMs),
      ]),
    ),
    "",
    "Per gate use, at each validation (step: train CV / eval CV / eval drops):",
    "",
    ...table(
      ["variant", "gate use", "evolution"],
      q.health.flatMap((x) =>
        x.gates.map((g) => [
          x.case,
          `\`${g.name}\``,
          g.points.map((p) =>
            `${p.step}: ${formatFigure(p.loadCv)} / ${formatFigure(p.evalLoadCv)} / ${
              pct(p.evalDropRate)
            }`
          ).join("; "),
        ])
      ),
    ),
    "",
  );
  if (q.failures.length) {
    md.push(`${h} Failed runs`, "", ...q.failures.map((f) => `- ${f}`), "");
  }
  return md;
}

/**
 * Why the benchmark has the size it has, with this run's own figures: its
 * speed, its wall time, and how far past the plateau its runs got.
 */
function whyThisSize(q: QualityResult): string {
  const s = q.settings;
  const ms = q.health.map((x) => x.stepMs).filter(Number.isFinite);
  const runs = q.runs.filter((r) => !r.error);
  const exits = runs.map((r) => r.plateauExit).filter((e): e is number => typeof e === "number");
  const stuck = runs.length - exits.length;
  const fit = plateauFit(runs.filter((r) => r.convention === s.convention));
  return "Why this size: the `tiny` preset is the project's default run and what this 2-core " +
    `machine trains fastest. Two 1-rank runs at once took ${
      ms.length ? `${Math.min(...ms).toFixed(0)}-${Math.max(...ms).toFixed(0)}` : "–"
    } ms a step each here (medians per variant), and the ${runs.length} runs of ${s.steps} ` +
    `steps took ${(q.wallS / 60).toFixed(1)} minutes in all. ` +
    (exits.length
      ? `${stuck ? `${exits.length} of ${runs.length} runs` : "Every run"} left the unigram ` +
        `plateau (training loss below ${PLATEAU_EXIT}; ` +
        `the last at step ${Math.max(...exits)}), so the variants had at least ` +
        `${s.steps - Math.max(...exits)} steps past it to separate` +
        (fit
          ? `; the final loss still follows the exit step (r = ${fit.r.toFixed(2)}, ` +
            `${(10 * fit.slope).toFixed(3)} nats per 10 steps later). `
          : ". ")
      : "No run left the unigram plateau. ") +
    `The default, ${DEFAULT_STEPS} steps of ${DEFAULT_SEEDS} paired seeds and ` +
    `${DEFAULT_OTHER_SEEDS} of the other convention, is what fits in about 45 minutes here ` +
    "and decides the paper's main claim: at " +
    "150 steps the seeds still differed mostly in when they left the plateau, and every claim " +
    "stayed undecided even with 5 seeds (bench/results/quality-150steps); twice as long, the " +
    "late seeds catch up. Claims whose differences are smaller than the seeds' spread need " +
    "more seeds (`--seeds`) than one 45-minute run holds.";
}

/** "seed 1" or "seeds 1-n". */
function seedsLabel(n: number): string {
  return n === 1 ? "seed 1" : `seeds 1-${n}`;
}

function tFactor(seeds: number): string {
  return seeds >= 2 ? studentTQuantile(0.975, seeds - 1).toFixed(3) : "–";
}

/** Runs one planned run as a `deno task train` process; its log goes to `out/train.log`. */
async function trainProcess(run: PlannedRun): Promise<RunResult> {
  // A run interrupted before its summary is trained again from the start.
  await Deno.remove(run.out, { recursive: true }).catch(() => {});
  await Deno.mkdir(run.out, { recursive: true });
  const log = await Deno.open(`${run.out}/../seed-${run.seed}.log`, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        V8_HEAP_FLAG,
        new URL("../cli/train.ts", import.meta.url).pathname,
        ...run.args,
        "--json",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await child.stderr.pipeTo(log.writable);
    const status = await child.status;
    if (!status.success) throw new Error(`deno task train exited with code ${status.code}`);
    const result = await readRun(run);
    // The benchmark reads losses and metrics only: drop the checkpoints (megabytes a run).
    for await (const e of Deno.readDir(run.out)) {
      if (e.name === "latest" || e.name.startsWith("ckpt-")) {
        await Deno.remove(`${run.out}/${e.name}`, { recursive: true });
      }
    }
    return result;
  } catch (e) {
    return failed(run, (e as Error).message.split("\n")[0]);
  } finally {
    try {
      log.close();
    } catch {
      // closed by pipeTo
    }
  }
}

function failed(run: PlannedRun, error: string): RunResult {
  return {
    case: run.case,
    seed: run.seed,
    convention: run.convention,
    valLoss: NaN,
    heldoutLoss: NaN,
    stepMs: NaN,
    wallS: NaN,
    spikes: [],
    collapses: [],
    gates: {},
    error,
  };
}

/** Runs `runs`, `jobs` at a time, reading those already finished in their folders. */
async function runAll(
  runs: PlannedRun[],
  jobs: number,
  say: (line: string) => void,
): Promise<RunResult[]> {
  const results: RunResult[] = new Array(runs.length);
  let next = 0, done = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < runs.length) {
      const i = next++;
      const run = runs[i];
      const finished = await Deno.stat(`${run.out}/summary.json`).then(() => true, () => false);
      const r = finished
        ? await readRun(run).catch((e) => failed(run, e.message))
        : await trainProcess(run);
      results[i] = r;
      done++;
      const min = (performance.now() - t0) / 60e3;
      say(
        `quality: ${run.case} seed ${run.seed} (${run.convention}) ${
          r.error
            ? `failed: ${r.error}`
            : `validation ${r.valLoss.toFixed(4)}, held-out ${r.heldoutLoss.toFixed(4)}, ` +
              `${r.stepMs.toFixed(0)} ms/step${
                r.spikes.length ? `, ${r.spikes.length} spike(s)` : ""
              }` +
              (finished ? " (read)" : "")
        } [${done}/${runs.length}, ${min.toFixed(1)} min]`,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, runs.length) }, worker));
  return results;
}

/** Writes `dir/report.md`, `dir/quality.json` (every figure) and `dir/quality.jsonl` (the rows). */
export async function writeQualityOutputs(
  dir: string,
  q: QualityResult,
  command: string,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const md = [
    "# Quality of every variant over paired seeds, beside the paper's claims",
    "",
    "```sh",
    command,
    "```",
    "",
    ...qualityMarkdown(q, 2),
    "Raw figures: [quality.json](quality.json) (every run's losses, spikes, collapses and " +
    "routing), [quality.jsonl](quality.jsonl) (the rows of `--json`).",
    "",
  ];
  await Deno.writeTextFile(`${dir}/report.md`, md.join("\n"));
  await Deno.writeTextFile(
    `${dir}/quality.json`,
    JSON.stringify({ ...q, command }, null, 1) + "\n",
  );
  await Deno.writeTextFile(
    `${dir}/quality.jsonl`,
    qualityRows(q).map((r) => JSON.stringify(r)).join("\n") + "\n",
  );
}

/**
 * Runs the benchmark on a command line of {@linkcode QUALITY_COMMAND};
 * `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runQualityBench(args: string[]): Promise<void> {
  const f = parseCommand(QUALITY_COMMAND, args);
  if (f.help) return console.log(usage(QUALITY_COMMAND));
  const out = f.string("out");
  if (out === "") throw new UsageError("--out must be a directory, not empty");
  const from = fromFlag(f, "from", "quality.json");
  if (from !== undefined) {
    // Nothing runs: the saved runs are analysed again and the outputs rewritten.
    const saved = JSON.parse(await Deno.readTextFile(`${from}/quality.json`));
    // Runs whose folders are still here are read again (figures added since are filled in).
    const plan = qualityPlan(saved.settings);
    const runs: RunResult[] = await Promise.all(
      (saved.runs as RunResult[]).map(async (r) => {
        const p = plan.find((x) =>
          x.case === r.case && x.seed === r.seed && x.convention === r.convention
        );
        return r.error || !p ? r : await readRun(p).catch(() => r);
      }),
    );
    const q = summarizeQuality(runs, saved.settings, saved.wallS, saved.code);
    await writeQualityOutputs(out ?? from, q, saved.command);
    console.error(`quality: wrote ${out ?? from}/report.md, quality.json, quality.jsonl`);
    return printRows(qualityRows(q), f.has("json"));
  }
  const settings = qualitySettings(f);
  const plan = qualityPlan(settings);
  const say = (line: string) => console.error(line);
  say(
    `quality: ${plan.length} runs (${settings.cases.length} variants x ${settings.seeds} seeds, ` +
      `${settings.otherSeeds} seed(s) of the other convention), ${settings.steps} steps each, ` +
      `${settings.jobs} at a time, into ${settings.runs}`,
  );
  const t0 = performance.now();
  const results = await runAll(plan, settings.jobs, say);
  const q = summarizeQuality(
    results,
    settings,
    (performance.now() - t0) / 1000,
    await codeVersion(),
  );
  const json = f.has("json");
  if (out !== undefined) {
    await writeQualityOutputs(out, q, `deno task bench quality ${args.join(" ")}`.trim());
    say(`quality: wrote ${out}/report.md, quality.json, quality.jsonl`);
  }
  if (!json) {
    console.log(
      `validation loss of every variant over ${settings.seeds} paired seeds (runs in ` +
        `${settings.runs});\npaper: GPT-2 MoE (loss) and WikiText-103 (perplexity), BPE ` +
        "tokens: compare the order",
    );
  }
  printRows(qualityRows(q), json);
  if (!json) { for (const c of q.claims) console.log(`${c.claim}: ${c.verdict}. ${c.detail}`); }
}
