/**
 * Small statistics over plain number lists.
 *
 * @module
 */

/** The sum of `xs`. */
export function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** The median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("median of an empty list");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The arithmetic mean of a non-empty list. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("mean of an empty list");
  return sum(xs) / xs.length;
}

/** The sample standard deviation (divisor n - 1); 0 for a single value. */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(sum(xs.map((x) => (x - m) ** 2)) / (xs.length - 1));
}

/**
 * The coefficient of variation of loads: population standard deviation over
 * the mean (0 when every load is equal, 1 for `[2, 2, 0, 0]`, `sqrt(E - 1)`
 * when one of E experts takes everything); 0 when the mean is 0.
 */
export function coefficientOfVariation(xs: readonly number[]): number {
  const m = mean(xs);
  if (m === 0) return 0;
  return Math.sqrt(sum(xs.map((x) => (x - m) ** 2)) / xs.length) / m;
}

/** `ln Γ(x)` for x > 0 (Lanczos, g = 7, 9 terms; about 15 digits). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The regularized incomplete beta function `I_x(a, b)` (continued fraction, Lentz). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const front = Math.exp(
    lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x),
  ) / a;
  const tiny = 1e-300;
  let f = 1, c = 1, d = 0;
  for (let i = 0; i <= 400; i++) {
    const m = i >> 1;
    const num = i === 0
      ? 1
      : i % 2 === 0
      ? (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m))
      : -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    d = Math.abs(d) < tiny ? tiny : d;
    d = 1 / d;
    c = 1 + num / c;
    c = Math.abs(c) < tiny ? tiny : c;
    const cd = c * d;
    f *= cd;
    if (Math.abs(1 - cd) < 1e-15) break;
  }
  return front * (f - 1);
}

/** `P(T <= t)` for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The quantile `q` (0 < q < 1) of Student's t with `df` degrees of freedom:
 * `studentTQuantile(0.975, 2)` is 4.303, the factor of a 95% interval over 3
 * values.
 */
export function studentTQuantile(q: number, df: number): number {
  if (!(q > 0 && q < 1) || !(df > 0)) throw new RangeError(`no t quantile ${q} for df ${df}`);
  if (q < 0.5) return -studentTQuantile(1 - q, df);
  let lo = 0, hi = 1;
  while (studentTCdf(hi, df) < q) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < q) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** A mean with its two-sided confidence interval. */
export interface Interval {
  /** The mean of the values. */
  mean: number;
  /** Lower end of the interval (NaN with fewer than 2 values). */
  low: number;
  /** Upper end of the interval (NaN with fewer than 2 values). */
  high: number;
  /** How many values. */
  n: number;
}

/**
 * The t-interval of the mean of `xs` (e.g. paired differences, one per
 * seed): `mean ± t_{(1+level)/2, n-1} * s / sqrt(n)`, s the sample standard
 * deviation. With fewer than 2 values the ends are NaN.
 */
export function tInterval(xs: readonly number[], level = 0.95): Interval {
  const m = mean(xs), n = xs.length;
  if (n < 2) return { mean: m, low: NaN, high: NaN, n };
  const half = studentTQuantile((1 + level) / 2, n - 1) * sampleStd(xs) / Math.sqrt(n);
  return { mean: m, low: m - half, high: m + half, n };
}
