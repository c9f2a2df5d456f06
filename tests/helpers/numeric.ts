/**
 * Numeric comparisons shared by the equivalence tests.
 *
 * @module
 */

/** `|a - b| / |a|` over the elements (the absolute norm of the difference when `a` is zero). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
