/**
 * Training progress for people and for tools: a one-line progress bar (step,
 * loss, tokens/s, ETA) on stderr, and `metrics.jsonl`, one JSON object per step.
 *
 * ```ts
 * import { MetricsWriter, ProgressBar } from "./progress.ts";
 * const bar = new ProgressBar({ total: 300 });
 * using metrics = new MetricsWriter("runs/a/metrics.jsonl");
 * bar.update({ step: 1, loss: 5.5, tokensPerS: 12_000 });
 * metrics.append({ step: 1, loss: 5.5, tokens_per_s: 12_000 });
 * bar.done();
 * ```
 *
 * @module
 */

/** One step's figures for the progress line. */
export interface ProgressSnapshot {
  /** Completed steps. */
  step: number;
  /** Steps the run will take in all. */
  total: number;
  /** Training loss of the latest step. */
  loss: number;
  /** Throughput of the latest step (or a running average), tokens per second. */
  tokensPerS: number;
  /** Estimated seconds to finish; `NaN` when not yet known. */
  etaS: number;
}

/** `65` → `1m05s`, `3725` → `1h02m`, `9` → `9s`; `--` when not finite. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** `950` → `950`, `12345` → `12.3k`, `4.2e6` → `4.20M`. */
export function formatRate(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  return `${Math.round(x)}`;
}

/**
 * The progress line, e.g.
 * `step  120/300 [########            ]  40% loss 3.1416 | 12.3k tok/s | ETA 1m05s`.
 *
 * @param width Characters of the bar between the brackets.
 */
export function formatProgress(s: ProgressSnapshot, width = 20): string {
  const frac = s.total > 0 ? Math.min(1, Math.max(0, s.step / s.total)) : 0;
  const filled = Math.round(frac * width);
  const digits = String(s.total).length;
  return `step ${String(s.step).padStart(digits)}/${s.total} ` +
    `[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${
      String(Math.floor(frac * 100)).padStart(3)
    }% ` +
    `loss ${s.loss.toFixed(4)} | ${formatRate(s.tokensPerS)} tok/s | ETA ${formatDuration(s.etaS)}`;
}

/** Where the progress bar writes: `Deno.stderr` by default. */
export interface ProgressSink {
  /** Writes bytes synchronously, returning how many were written. */
  writeSync(p: Uint8Array): number;
  /** Whether this is a terminal (then the line is redrawn in place). */
  isTerminal(): boolean;
}

/** Options of {@linkcode ProgressBar}. */
export interface ProgressBarOptions {
  /** Steps the run will take in all. */
  total: number;
  /** Output (default `Deno.stderr`). */
  sink?: ProgressSink;
  /** Seconds between plain lines when the sink is not a terminal (default 10). */
  everyS?: number;
  /** Clock in seconds (default `performance.now() / 1000`); for tests. */
  now?: () => number;
}

/**
 * A progress line on a terminal, redrawn in place with `\r`; on anything else
 * (a log file, CI) a plain line at the first step, every `everyS` seconds
 * and at the last step. The ETA extrapolates the pace since the first update
 * (unknown until the second), so a resumed run estimates from its own steps.
 */
export class ProgressBar {
  readonly #total: number;
  readonly #sink: ProgressSink;
  readonly #tty: boolean;
  readonly #everyS: number;
  readonly #now: () => number;
  #start: { step: number; t: number } | null = null;
  #lastPrint = -Infinity;
  #drawn = false;

  /** Makes a bar for a run of `options.total` steps. */
  constructor(options: ProgressBarOptions) {
    this.#total = options.total;
    this.#sink = options.sink ?? Deno.stderr;
    this.#tty = this.#sink.isTerminal();
    this.#everyS = options.everyS ?? 10;
    this.#now = options.now ?? (() => performance.now() / 1000);
  }

  /** Reports that `step` steps are complete. */
  update(figures: { step: number; loss: number; tokensPerS: number }): void {
    const t = this.#now();
    this.#start ??= { step: figures.step, t };
    const done = figures.step - this.#start.step;
    const etaS = done > 0 ? ((t - this.#start.t) / done) * (this.#total - figures.step) : NaN;
    const line = formatProgress({ ...figures, total: this.#total, etaS });
    if (this.#tty) {
      this.#write(`\r${line}\x1b[K`);
      this.#drawn = true;
    } else if (t - this.#lastPrint >= this.#everyS || figures.step >= this.#total) {
      this.#write(`${line}\n`);
      this.#lastPrint = t;
    }
  }

  /** Ends the bar's line (on a terminal) so later output starts on a fresh one. */
  done(): void {
    if (this.#drawn) this.#write("\n");
    this.#drawn = false;
  }

  #write(text: string): void {
    const bytes = new TextEncoder().encode(text);
    for (let n = 0; n < bytes.length;) n += this.#sink.writeSync(bytes.subarray(n));
  }
}

/**
 * Appends one JSON object a line to a file (`metrics.jsonl`). Each line is
 * handed to the operating system as it is appended (no buffering in the
 * process), so a reader or a crash sees whole lines up to the last step.
 * Non-finite numbers are written as `null`.
 */
export class MetricsWriter implements Disposable {
  readonly #file: Deno.FsFile;

  /** Opens `path` for appending, creating it if needed. */
  constructor(path: string) {
    this.#file = Deno.openSync(path, { create: true, append: true });
  }

  /** Writes `record` as one line. */
  append(record: Record<string, unknown>): void {
    const bytes = new TextEncoder().encode(JSON.stringify(record) + "\n");
    for (let n = 0; n < bytes.length;) n += this.#file.writeSync(bytes.subarray(n));
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** Closes the file (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}
