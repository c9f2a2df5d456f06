/**
 * How every entry point ends: a bad command line prints one line and exits
 * 2; an expected failure (a missing server, backend or checkpoint, an
 * unreachable NATS, a refused module, a run stopped on faults) prints one
 * line and exits 1 (3 for a run stopped on faults); anything else is a bug
 * and keeps its stack trace. `--debug` anywhere on the command line shows
 * the trace of expected failures too.
 *
 * @example
 * ```ts ignore
 * import { runCli } from "./run.ts";
 * await runCli(async (args) => {
 *   console.log(args);
 *   return 0;
 * });
 * ```
 *
 * @module
 */
import { RemoteError } from "../actors/mod.ts";

/** Exit code of a bad command line. */
export const EXIT_USAGE = 2;
/** Exit code of an expected failure. */
export const EXIT_FAILED = 1;
/** Exit code of a training run stopped on faults it could not survive. */
export const EXIT_STOPPED = 3;

/**
 * Names of the error classes that report an expected failure, with their
 * exit codes. An actor's error arrives as a `RemoteError` carrying the name
 * of the class thrown there.
 */
export const EXPECTED_ERRORS: ReadonlyMap<string, number> = new Map([
  ["UsageError", EXIT_USAGE],
  ["ConfigError", EXIT_USAGE],
  ["DataError", EXIT_FAILED],
  ["CheckpointError", EXIT_FAILED],
  ["TrainingStopped", EXIT_STOPPED],
  ["ModuleNotAllowedError", EXIT_FAILED],
  ["NatsServerNotFoundError", EXIT_FAILED],
  ["NatsConnectError", EXIT_FAILED],
  ["BackendUnavailableError", EXIT_FAILED],
  ["ActorDiedError", EXIT_FAILED],
  ["RuntimeStateError", EXIT_FAILED],
]);

/** The exit code of an expected failure, `null` for a bug. */
export function expectedExitCode(e: unknown): number | null {
  if (!(e instanceof Error)) return null;
  const name = e instanceof RemoteError ? e.remoteName : e.name;
  return EXPECTED_ERRORS.get(name) ?? null;
}

/** The one line printed for an expected failure. */
export function failureLine(e: Error): string {
  // An actor's error reads "Name: message"; the name is the runtime's concern, not the user's.
  const message = e instanceof RemoteError ? e.message.slice(e.remoteName.length + 2) : e.message;
  return `error: ${message.split("\n")[0]}`;
}

/**
 * Runs `main` with the command line (less `--debug`) and exits with its
 * code, or as above when it throws. Ctrl-C runs `onInterrupt` (if given)
 * and exits 130.
 */
export async function runCli(
  main: (args: string[]) => Promise<number>,
  options: { args?: string[]; onInterrupt?: () => Promise<void> } = {},
): Promise<never> {
  const all = options.args ?? Deno.args;
  const debug = all.includes("--debug");
  const args = all.filter((a) => a !== "--debug");
  if (options.onInterrupt) {
    const stop = options.onInterrupt;
    Deno.addSignalListener("SIGINT", () => {
      console.error("\ninterrupted; stopping");
      stop().finally(() => Deno.exit(130));
    });
  }
  let code: number;
  try {
    code = await main(args);
  } catch (e) {
    const expected = expectedExitCode(e);
    if (expected === null) throw e;
    console.error(debug ? e : failureLine(e as Error));
    code = expected;
  }
  Deno.exit(code);
}
