/**
 * The simulator's device rates fitted to measured op times: a real run's
 * timed ops (`TimedOp`s, as `trainStep` records them or a saved Chrome
 * trace holds them) of a program whose steps carry cost estimates
 * (`cost.ts`). Each forward op's time is modelled as
 * `flops / matmul + bytes / memory + tanh / tanhRate + kernels * kernelS`
 * (plus its host read at the base rates), and the four rates are the
 * non-negative least-squares fit on relative errors; the backward factor is
 * the ratio of the measured backward to the modelled forward.
 *
 * @module
 */

import type { StepCost, StepShape } from "./cost.ts";
import type { DeviceRates } from "./hardware.ts";
import type { TimedOp } from "./overlap_report.ts";
import { median } from "./stats.ts";
import type { Step } from "./steps.ts";

/** One step's measured time in one pass, with its cost. */
export interface OpSample {
  /** The step. */
  name: string;
  /** The pass. */
  phase: "fwd" | "bwd";
  /** Measured milliseconds (the median over the runs given). */
  ms: number;
  /** Its forward cost. */
  cost: StepCost;
}

/**
 * The measured compute ops of `runs` (each a list of one rank's timed ops of
 * one step of `program`) matched to the program's steps and their costs at
 * `shape`: the median time of each (step, pass). Ops of steps without a cost
 * are left out.
 */
export function opSamples(program: Step[], shape: StepShape, runs: TimedOp[][]): OpSample[] {
  const costs = new Map<string, StepCost>();
  for (const s of program) {
    if (s.kind === "compute" && s.cost) costs.set(s.name, s.cost(shape));
    if (s.kind === "route" && s.cost) costs.set(`${s.name}.route`, s.cost(shape));
  }
  const times = new Map<string, number[]>();
  for (const ops of runs) {
    const per = new Map<string, number>();
    for (const o of ops) {
      if (o.kind !== "op" || !costs.has(o.name)) continue;
      const key = `${o.phase} ${o.name}`;
      per.set(key, (per.get(key) ?? 0) + o.endMs - o.startMs);
    }
    for (const [k, v] of per) times.set(k, [...(times.get(k) ?? []), v]);
  }
  return [...times].map(([key, ms]) => {
    const [phase, name] = key.split(" ") as ["fwd" | "bwd", string];
    return { name, phase, ms: median(ms), cost: costs.get(name)! };
  });
}

/** A fit's rates and how well they reproduce the samples. */
export interface RateFit {
  /** `base` with the fitted rates and backward factor. */
  device: DeviceRates;
  /** Each sample's modelled milliseconds beside the measured. */
  rows: { name: string; phase: "fwd" | "bwd"; measuredMs: number; modelledMs: number }[];
  /** Median absolute relative error of the rows. */
  medianErrorPct: number;
}

/** Least squares of `A x = b` over the columns in `cols` (normal equations, Gaussian elimination). */
function solve(A: number[][], b: number[], cols: number[]): number[] | null {
  const n = cols.length;
  const M = cols.map((i) => [...cols.map((j) => A.reduce((s, r) => s + r[i] * r[j], 0)), 0]);
  cols.forEach((i, k) => (M[k][n] = A.reduce((s, r, m) => s + r[i] * b[m], 0)));
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    if (Math.abs(M[p][c]) < 1e-300) return null;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  return M.map((row, k) => row[n] / M[k][k]);
}

/**
 * Non-negative least squares of `A x = b` for a few unknowns: the best of
 * the unconstrained solutions on every subset of the columns whose
 * coefficients are all non-negative (the others 0).
 */
export function nnls(A: number[][], b: number[]): number[] {
  const m = A[0]?.length ?? 0;
  let best: number[] = new Array(m).fill(0);
  let bestErr = b.reduce((s, v) => s + v * v, 0);
  for (let mask = 1; mask < 1 << m; mask++) {
    const cols = Array.from({ length: m }, (_, i) => i).filter((i) => mask & (1 << i));
    const x = solve(A, b, cols);
    if (!x || x.some((v) => v < 0 || !Number.isFinite(v))) continue;
    const full = new Array(m).fill(0);
    cols.forEach((i, k) => (full[i] = x[k]));
    const err = A.reduce(
      (s, r, k) => s + (r.reduce((t, a, i) => t + a * full[i], 0) - b[k]) ** 2,
      0,
    );
    if (err < bestErr) [best, bestErr] = [full, err];
  }
  return best;
}

/**
 * Fits `base`'s matmul, memory, tanh and per-kernel rates to the forward
 * samples and its backward factor to the backward ones. A rate that the
 * samples cannot tell (coefficient 0) becomes free (`Infinity`, or 0 s a
 * kernel).
 */
export function fitDeviceRates(samples: OpSample[], base: DeviceRates): RateFit {
  const fwd = samples.filter((s) => s.phase === "fwd" && s.ms > 0);
  const host = (c: StepCost) =>
    c.hostBytes ? 1e3 * (base.hostReadS + c.hostBytes / base.hostBytesPerS) : 0;
  // Rows scaled by 1/measured: relative errors.
  const features = (c: StepCost) => [
    c.flops,
    c.batchedFlops ?? 0,
    c.bytes,
    c.copyBytes ?? 0,
    c.tanh ?? 0,
    c.kernels,
  ];
  const A = fwd.map((s) => features(s.cost).map((v) => (1e3 * v) / s.ms));
  const b = fwd.map((s) => (s.ms - host(s.cost)) / s.ms);
  const x = nnls(A, b);
  const rate = (v: number) => (v > 0 ? 1 / v : Infinity);
  const device: DeviceRates = {
    ...base,
    matmulFlopsPerS: rate(x[0]),
    batchedFlopsPerS: rate(x[1]),
    memoryBytesPerS: rate(x[2]),
    copyBytesPerS: rate(x[3]),
    tanhPerS: rate(x[4]),
    kernelS: x[5],
    fusion: 1,
  };
  const modelled = (c: StepCost) =>
    1e3 * features(c).reduce((a, v, i) => a + v * x[i], 0) + host(c);
  const fwdOf = new Map(fwd.map((s) => [s.name, modelled(s.cost)]));
  const bwd = samples.filter((s) => s.phase === "bwd" && (fwdOf.get(s.name) ?? 0) > 0);
  const ratio = bwd.length
    ? bwd.reduce((a, s) => a + s.ms, 0) / bwd.reduce((a, s) => a + fwdOf.get(s.name)!, 0)
    : base.backwardFactor;
  device.backwardFactor = ratio;
  const rows = samples.map((s) => ({
    name: s.name,
    phase: s.phase,
    measuredMs: s.ms,
    modelledMs: (s.phase === "bwd" ? ratio : 1) * modelled(s.cost),
  }));
  const errs = rows.map((r) => Math.abs(r.modelledMs - r.measuredMs) / r.measuredMs * 100);
  return { device, rows, medianErrorPct: median(errs) };
}
