/**
 * Checkpoints: parameters and optimizer state in the safetensors format,
 * tensors named by their role, a JSON config beside them, a SHA-256 manifest,
 * written atomically; loading verifies, falls back to the previous valid
 * checkpoint, and re-shards experts for a different number of ranks.
 *
 * Layout: one writer (the driver) gathers every rank's tensors
 * ({@linkcode mergeShards}) and writes a directory per step,
 *
 * ```text
 * DIR/ckpt-000100/model.safetensors      parameters, experts by GLOBAL index
 * DIR/ckpt-000100/optimizer.safetensors  AdamW moments (<param>.adam_m/_v), step in metadata
 * DIR/ckpt-000100/config.json            the run config
 * DIR/ckpt-000100/state.json             resume point: step, seed, ranks, extra
 * DIR/ckpt-000100/manifest.json          size and SHA-256 of the four files above
 * DIR/latest                             "ckpt-000100": the commit point
 * ```
 *
 * The files are written into a hidden temporary directory, fsynced, and the
 * directory renamed into place; `latest` is replaced (temp file, fsync,
 * rename) last. A crash at any point leaves `latest` naming a complete
 * checkpoint. Because experts carry global names, a checkpoint written by N
 * ranks loads on M ranks: each takes the dense tensors and its own experts
 * ({@linkcode shardExperts}).
 *
 * ```ts
 * import { loadLatestValid, saveCheckpoint } from "./checkpoint.ts";
 * declare const params: Map<string, { shape: number[]; data: Float32Array }>;
 * await saveCheckpoint("runs/a", {
 *   params,
 *   optimizer: { step: 100, tensors: new Map() },
 *   config: { variant: "scmoe" },
 *   state: { step: 100, seed: 1, ranks: 2 },
 * });
 * const found = await loadLatestValid("runs/a", { shard: { rank: 0, size: 4, numExperts: 8 } });
 * ```
 *
 * @module
 */
import type { OptimizerState } from "./optimizer.ts";

/** Element arrays a checkpoint stores. */
export type HostArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** A tensor on the host: its shape and its elements in row-major order. */
export interface HostTensor {
  /** Dimensions; `[]` for a scalar. */
  shape: number[];
  /** Elements; its length is the product of `shape`. */
  data: HostArray;
}

const EXPERT_SEGMENT = /(?:^|\.)experts\.(\d+)(?:\.|$)/;

/**
 * The global expert index a tensor name carries, or `null` for a dense
 * (replicated) tensor. Expert tensors are named `….experts.<global index>.…`,
 * for example `blocks.3.moe.experts.5.w1` (expert 5) or its optimizer moment
 * `blocks.3.moe.experts.5.w1.adam_m`.
 */
export function expertIndex(name: string): number | null {
  const match = EXPERT_SEGMENT.exec(name);
  return match === null ? null : Number(match[1]);
}

/**
 * The global experts rank `rank` of `size` owns: the contiguous block
 * `[floor(rank*E/size), floor((rank+1)*E/size))`, which is `[r*E/N, (r+1)*E/N)`
 * when N divides E.
 *
 * @throws {RangeError} when the rank is outside the group or experts are fewer than ranks.
 */
export function expertRange(rank: number, size: number, numExperts: number): [number, number] {
  if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size) {
    throw new RangeError(`rank ${rank} is not in a group of ${size}`);
  }
  if (!Number.isInteger(numExperts) || numExperts < size) {
    throw new RangeError(
      `${numExperts} experts cannot be shared by ${size} ranks (need at least one each)`,
    );
  }
  return [Math.floor((rank * numExperts) / size), Math.floor(((rank + 1) * numExperts) / size)];
}

/**
 * The names among `names` that rank `rank` of `size` holds: every dense name
 * and the expert names whose global index falls in its {@linkcode expertRange}.
 *
 * @example
 * ```ts
 * shardExperts(["wte", "b.1.experts.0.w1", "b.1.experts.3.w1"], 1, 2, 4);
 * // => ["wte", "b.1.experts.3.w1"]
 * ```
 */
export function shardExperts(
  names: Iterable<string>,
  rank: number,
  size: number,
  numExperts: number,
): string[] {
  const [lo, hi] = expertRange(rank, size, numExperts);
  return [...names].filter((name) => {
    const e = expertIndex(name);
    return e === null || (e >= lo && e < hi);
  });
}

/** A checkpoint that is missing, damaged or not ours; the message is one line. */
export class CheckpointError extends Error {
  /** Makes the error; line breaks in `message` are folded into spaces. */
  constructor(message: string) {
    super(message.replace(/\s*\n\s*/g, " "));
    this.name = "CheckpointError";
  }
}

const DTYPES = {
  F32: Float32Array,
  F64: Float64Array,
  I32: Int32Array,
  U8: Uint8Array,
} as const;
type DType = keyof typeof DTYPES;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function dtypeOf(data: HostArray): DType {
  for (const [dtype, ctor] of Object.entries(DTYPES)) {
    if (data instanceof ctor) return dtype as DType;
  }
  throw new TypeError(`unsupported array type ${data.constructor.name}`);
}

/** A safetensors file's tensors and its `__metadata__` string map. */
export interface Safetensors {
  /** Tensors by name. */
  tensors: Map<string, HostTensor>;
  /** Free-form string metadata. */
  metadata: Record<string, string>;
}

/**
 * Serializes tensors in the safetensors format: an 8-byte little-endian header
 * length, a JSON header (`dtype`, `shape`, `data_offsets` per tensor, names
 * sorted, padded with spaces to 8 bytes), then the raw little-endian data.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error("safetensors writing needs a little-endian platform");
  const header: Record<string, unknown> = { __metadata__: metadata };
  const names = [...tensors.keys()].sort();
  let offset = 0;
  for (const name of names) {
    const { shape, data } = tensors.get(name)!;
    if (shape.reduce((a, b) => a * b, 1) !== data.length) {
      throw new RangeError(
        `tensor ${name}: shape [${shape}] does not hold ${data.length} elements`,
      );
    }
    header[name] = {
      dtype: dtypeOf(data),
      shape,
      data_offsets: [offset, offset + data.byteLength],
    };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((new TextEncoder().encode(json).length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const name of names) {
    const { data } = tensors.get(name)!;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

/**
 * Parses a safetensors file, checking every field: header length within the
 * file, JSON header, known dtypes, whole shapes, offsets that match the shapes
 * and tile the data without holes or overlaps.
 *
 * @param source Named in error messages (a path, typically).
 * @throws {CheckpointError} `<source>: <what is wrong>` on any malformed input.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors"): Safetensors {
  const fail = (why: string) => new CheckpointError(`${source}: ${why}`);
  if (!LITTLE_ENDIAN) throw fail("safetensors reading needs a little-endian platform");
  if (bytes.length < 8) throw fail(`${bytes.length} bytes is too short for a safetensors file`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    throw fail(
      `not a safetensors file (header length ${headerLength} exceeds file size ${bytes.length})`,
    );
  }
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart)),
    );
  } catch {
    throw fail("not a safetensors file (header is not valid JSON)");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw fail("not a safetensors file (header is not a JSON object)");
  }
  const { __metadata__: meta = {}, ...entries } = header as Record<string, unknown>;
  if (
    typeof meta !== "object" || meta === null ||
    Object.values(meta).some((v) => typeof v !== "string")
  ) {
    throw fail("__metadata__ is not a map of strings");
  }
  const dataLength = bytes.length - dataStart;
  const spans: [number, number, string][] = [];
  const tensors = new Map<string, HostTensor>();
  for (const [name, entry] of Object.entries(entries)) {
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in DTYPES)) {
      throw fail(`tensor ${name}: unsupported dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(`tensor ${name}: shape is not a list of sizes`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o)) ||
      !(0 <= offsets[0] && offsets[0] <= offsets[1] && offsets[1] <= dataLength)
    ) {
      throw fail(
        `tensor ${name}: data_offsets ${JSON.stringify(offsets)} outside ${dataLength} data bytes`,
      );
    }
    const ctor = DTYPES[dtype as DType];
    const count = shape.reduce((a: number, b: number) => a * b, 1);
    if (offsets[1] - offsets[0] !== count * ctor.BYTES_PER_ELEMENT) {
      throw fail(`tensor ${name}: ${offsets[1] - offsets[0]} bytes do not fit ${dtype} [${shape}]`);
    }
    const start = dataStart + offsets[0];
    const data = new ctor(bytes.slice(start, start + offsets[1] - offsets[0]).buffer);
    tensors.set(name, { shape, data });
    spans.push([offsets[0], offsets[1], name]);
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let end = 0;
  for (const [begin, stop, name] of spans) {
    if (begin !== end) throw fail(`tensor ${name}: data starts at ${begin}, expected ${end}`);
    end = stop;
  }
  if (end !== dataLength) throw fail(`${dataLength - end} data bytes after the last tensor`);
  return { tensors, metadata: meta as Record<string, string> };
}

/**
 * Joins the tensors that ranks hold into one map. Dense tensors arrive from
 * every rank that holds them and must agree byte for byte; an expert must
 * come from one rank only.
 *
 * @throws {Error} naming the first tensor whose replicas differ.
 */
export function mergeShards(
  parts: Iterable<ReadonlyMap<string, HostTensor>>,
): Map<string, HostTensor> {
  const merged = new Map<string, HostTensor>();
  for (const part of parts) {
    for (const [name, t] of part) {
      const seen = merged.get(name);
      if (seen === undefined) merged.set(name, t);
      else if (expertIndex(name) !== null) {
        throw new Error(`expert tensor ${name} came from two ranks`);
      } else if (!sameTensor(seen, t)) throw new Error(`replicas of ${name} differ across ranks`);
    }
  }
  return merged;
}

function sameTensor(a: HostTensor, b: HostTensor): boolean {
  if (a.shape.join() !== b.shape.join() || dtypeOf(a.data) !== dtypeOf(b.data)) return false;
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Where a run stands, saved as `state.json`; enough to resume exactly. */
export interface TrainState {
  /** Completed training steps; the run resumes with data batch `step` (batches are a function of seed and step). */
  step: number;
  /** Seed of the run (data order, initialization, gate noise). */
  seed: number;
  /** Number of ranks that trained up to this checkpoint. */
  ranks: number;
  /** Other resume facts (e.g. gate-noise RNG counters, skipped steps); JSON values. */
  extra?: Record<string, unknown>;
}

/** Everything a checkpoint holds. */
export interface CheckpointContents {
  /** Parameters by role name, experts by global index. */
  params: Map<string, HostTensor>;
  /** Optimizer step and moments, named after their parameters. */
  optimizer: OptimizerState;
  /** The run config (JSON), saved as `config.json` for tools such as `generate`. */
  config: Record<string, unknown>;
  /** The resume point. */
  state: TrainState;
}

/** Options of {@linkcode saveCheckpoint}. */
export interface SaveOptions {
  /** Checkpoints to keep, newest first, counting this one (default 3; older ones are deleted). */
  keep?: number;
}

const FILES = ["model.safetensors", "optimizer.safetensors", "config.json", "state.json"] as const;
const CKPT_NAME = /^ckpt-(\d+)$/;

/** Directory name of the checkpoint of `step`, e.g. `ckpt-000100`. */
export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(6, "0")}`;
}

/**
 * Writes a checkpoint of `contents.state.step` under `dir` atomically and
 * makes it `latest`; then deletes checkpoints beyond `keep` and debris of
 * interrupted saves. Only one process may save into `dir`.
 *
 * @returns the checkpoint's directory.
 */
export async function saveCheckpoint(
  dir: string,
  contents: CheckpointContents,
  options: SaveOptions = {},
): Promise<string> {
  const { keep = 3 } = options;
  await Deno.mkdir(dir, { recursive: true });
  const name = checkpointName(contents.state.step);
  const final = `${dir}/${name}`;
  const tmp = `${dir}/.tmp-${name}-${crypto.randomUUID()}`;
  await Deno.mkdir(tmp);
  const encoded: Record<(typeof FILES)[number], Uint8Array> = {
    "model.safetensors": encodeSafetensors(contents.params),
    "optimizer.safetensors": encodeSafetensors(contents.optimizer.tensors, {
      step: String(contents.optimizer.step),
    }),
    "config.json": new TextEncoder().encode(JSON.stringify(contents.config, null, 2) + "\n"),
    "state.json": new TextEncoder().encode(JSON.stringify(contents.state, null, 2) + "\n"),
  };
  const files: Record<string, { bytes: number; sha256: string }> = {};
  for (const file of FILES) {
    await writeSynced(`${tmp}/${file}`, encoded[file]);
    files[file] = { bytes: encoded[file].length, sha256: await sha256(encoded[file]) };
  }
  const manifest = { format: "scmoe-checkpoint/1", step: contents.state.step, files };
  await writeSynced(
    `${tmp}/manifest.json`,
    new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"),
  );
  await syncDir(tmp);
  const old = `${dir}/.old-${name}-${crypto.randomUUID()}`;
  const replacing = await exists(final);
  if (replacing) await Deno.rename(final, old);
  await Deno.rename(tmp, final);
  await syncDir(dir);
  const pointer = `${dir}/.latest-${crypto.randomUUID()}`;
  await writeSynced(pointer, new TextEncoder().encode(name + "\n"));
  await Deno.rename(pointer, `${dir}/latest`);
  await syncDir(dir);
  if (replacing) await Deno.remove(old, { recursive: true });
  await prune(dir, contents.state.step, keep);
  return final;
}

/** Removes debris of interrupted saves and all but the `keep` newest checkpoints up to `step`. */
async function prune(dir: string, step: number, keep: number): Promise<void> {
  const older = (await listCheckpoints(dir)).filter((c) => c.step <= step).slice(keep);
  for (const c of older) await Deno.remove(`${dir}/${c.name}`, { recursive: true });
  for await (const entry of Deno.readDir(dir)) {
    if (/^\.(tmp|old|latest)-/.test(entry.name)) {
      await Deno.remove(`${dir}/${entry.name}`, { recursive: true });
    }
  }
}

/** Options of {@linkcode loadCheckpoint} and {@linkcode loadLatestValid}. */
export interface LoadOptions {
  /** Keep only what this rank holds: dense tensors and its experts (with their moments). */
  shard?: { rank: number; size: number; numExperts: number };
}

/**
 * Reads the checkpoint in directory `path`, verifying each file's size and
 * SHA-256 against the manifest before parsing it.
 *
 * @throws {CheckpointError} one line naming the file and what is wrong with it.
 * @throws {RangeError} when the checkpoint has experts past `shard.numExperts`
 *   (a config mismatch, not damage: {@linkcode loadLatestValid} does not fall back).
 */
export async function loadCheckpoint(
  path: string,
  options: LoadOptions = {},
): Promise<CheckpointContents> {
  const manifest = parseJson(await readChecked(`${path}/manifest.json`), `${path}/manifest.json`);
  const files =
    (manifest as { files?: Record<string, { bytes?: unknown; sha256?: unknown }> }).files;
  const verified: Record<string, Uint8Array> = {};
  for (const file of FILES) {
    const where = `${path}/${file}`;
    const expected = files?.[file];
    if (typeof expected?.bytes !== "number" || typeof expected.sha256 !== "string") {
      throw new CheckpointError(`${path}/manifest.json: no size and checksum for ${file}`);
    }
    const bytes = await readChecked(where);
    if (bytes.length !== expected.bytes) {
      throw new CheckpointError(
        `${where}: ${bytes.length} bytes, manifest says ${expected.bytes} (truncated or overwritten)`,
      );
    }
    const digest = await sha256(bytes);
    if (digest !== expected.sha256) {
      throw new CheckpointError(
        `${where}: checksum mismatch (sha256 ${digest.slice(0, 12)}…, manifest ${
          expected.sha256.slice(0, 12)
        }…)`,
      );
    }
    verified[file] = bytes;
  }
  const model = decodeSafetensors(verified["model.safetensors"], `${path}/model.safetensors`);
  const optim = decodeSafetensors(
    verified["optimizer.safetensors"],
    `${path}/optimizer.safetensors`,
  );
  const contents: CheckpointContents = {
    params: model.tensors,
    optimizer: { step: Number(optim.metadata.step ?? 0), tensors: optim.tensors },
    config: parseJson(verified["config.json"], `${path}/config.json`) as Record<string, unknown>,
    state: parseJson(verified["state.json"], `${path}/state.json`) as unknown as TrainState,
  };
  if (!["step", "seed", "ranks"].every((k) => Number.isSafeInteger(contents.state[k as "step"]))) {
    throw new CheckpointError(`${path}/state.json: step, seed and ranks must be integers`);
  }
  if (options.shard === undefined) return contents;
  const { rank, size, numExperts } = options.shard;
  for (const name of [...contents.params.keys(), ...contents.optimizer.tensors.keys()]) {
    const e = expertIndex(name);
    if (e !== null && e >= numExperts) {
      throw new RangeError(
        `${path}: tensor ${name} is past the ${numExperts} experts asked for`,
      );
    }
  }
  const pick = (m: Map<string, HostTensor>) =>
    new Map(shardExperts(m.keys(), rank, size, numExperts).map((n) => [n, m.get(n)!]));
  contents.params = pick(contents.params);
  contents.optimizer.tensors = pick(contents.optimizer.tensors);
  return contents;
}

/** What {@linkcode loadLatestValid} found. */
export interface FoundCheckpoint {
  /** Directory of the checkpoint loaded. */
  path: string;
  /** Its contents. */
  contents: CheckpointContents;
  /** One line per newer checkpoint passed over, saying why (empty when `latest` was good). */
  skipped: string[];
}

/**
 * Loads the checkpoint `DIR/latest` names or, when that one fails to verify,
 * the newest older one that does. Checkpoints newer than `latest` were never
 * committed and are ignored; without a `latest` file every checkpoint is a
 * candidate, newest first.
 *
 * @returns `null` when `dir` holds no checkpoint at all.
 * @throws {CheckpointError} when checkpoints exist but none verifies.
 */
export async function loadLatestValid(
  dir: string,
  options: LoadOptions = {},
): Promise<FoundCheckpoint | null> {
  const all = await listCheckpoints(dir);
  let pointer: string | null = null;
  try {
    pointer = (await Deno.readTextFile(`${dir}/latest`)).trim();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const skipped: string[] = [];
  let candidates = all;
  if (pointer !== null) {
    const named = CKPT_NAME.exec(pointer);
    if (named === null) {
      skipped.push(`${dir}/latest: does not name a checkpoint`);
    } else {
      if (!all.some((c) => c.name === pointer)) skipped.push(`${dir}/${pointer}: missing`);
      candidates = all.filter((c) => c.step <= Number(named[1]));
    }
  }
  if (candidates.length === 0 && skipped.length === 0) return null;
  for (const { name } of candidates) {
    const path = `${dir}/${name}`;
    try {
      return { path, contents: await loadCheckpoint(path, options), skipped };
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      skipped.push(e.message);
    }
  }
  throw new CheckpointError(`no valid checkpoint in ${dir}: ${skipped.join("; ")}`);
}

/** Checkpoint directories under `dir`, newest first. */
async function listCheckpoints(dir: string): Promise<{ name: string; step: number }[]> {
  const found: { name: string; step: number }[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const m = CKPT_NAME.exec(entry.name);
      if (entry.isDirectory && m !== null) found.push({ name: entry.name, step: Number(m[1]) });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return found.sort((a, b) => b.step - a.step);
}

async function readChecked(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`${path}: missing`);
    throw e;
  }
}

function parseJson(bytes: Uint8Array, source: string): Record<string, unknown> {
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
  } catch {
    // reported below
  }
  throw new CheckpointError(`${source}: not a JSON object`);
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function writeSynced(path: string, bytes: Uint8Array): Promise<void> {
  using file = await Deno.open(path, { write: true, createNew: true });
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
  await file.sync();
}

async function syncDir(path: string): Promise<void> {
  using dir = await Deno.open(path, { read: true });
  await dir.sync();
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
