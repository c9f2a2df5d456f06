/**
 * Runs a Deno script as a child process, as a user would from a shell.
 *
 * @module
 */

/** What a finished child printed, and how it ended. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output, decoded. */
  stdout: string;
  /** Standard error, decoded. */
  stderr: string;
}

/** Options of {@linkcode denoRun}. */
export interface DenoRunOptions {
  /** Working directory (default the current one). */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Flags of `deno run` before the script (default `-A` and the project's heap flag). */
  denoFlags?: string[];
}

/** `deno run -A --v8-flags=--initial-heap-size=128 SCRIPT ARGS` with output captured. */
export async function denoRun(
  script: string,
  args: string[] = [],
  options: DenoRunOptions = {},
): Promise<RunResult> {
  const flags = options.denoFlags ?? ["-A", "--v8-flags=--initial-heap-size=128"];
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, script, ...args],
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/** A small text corpus (about 40 KB of seeded sentences over a 26-word vocabulary). */
export function smallCorpus(lines = 700): string {
  const words = ("the jury said that city election was conducted in a manner which reflects " +
    "on the integrity of officials and voters alike while grand remarks went unheeded").split(" ");
  let seed = 7;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = 5 + Math.floor(next() * 10);
    out.push(
      Array.from({ length: n }, () => words[Math.floor(next() * words.length)]).join(" ") + ".",
    );
  }
  return out.join("\n");
}
