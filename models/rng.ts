/**
 * Counter-based random numbers: every value is a pure function of a seed, a
 * stream key and an index. A parameter or a token's gate noise therefore comes
 * out the same however the work is split across ranks.
 *
 * @module
 */

/** 32-bit FNV-1a hash of a string, used to turn names into stream keys. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Murmur3's finaliser: a bijective 32-bit mix. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Uniform in (0, 1) for (seed, key, index). */
function uniform(seed: number, key: number, index: number): number {
  const h = mix(mix(mix(seed ^ 0x9e3779b9) ^ key) ^ mix(index + 0x6a09e667));
  return (h + 0.5) / 4294967296;
}

/**
 * `n` standard normal values of stream `key`, starting at `offset`
 * (Box-Muller on counter-based uniforms).
 *
 * @example
 * ```ts
 * import { hashString, normals } from "./rng.ts";
 * const a = normals(7, hashString("w"), 4);
 * const b = normals(7, hashString("w"), 2, 2); // the same as a[2], a[3]
 * ```
 */
export function normals(seed: number, key: number, n: number, offset = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const j = offset + i;
    const u1 = uniform(seed, key, 2 * j);
    const u2 = uniform(seed, key, 2 * j + 1);
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}
