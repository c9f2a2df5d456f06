/**
 * `deno task bench NAME [flags]`: runs one benchmark. `deno task bench
 * --help` lists the benchmarks, `deno task bench NAME --help` the flags of
 * one. Every benchmark runs through {@linkcode runCli}: a bad command line
 * is one line and exit code 2, an expected failure one line and exit code 1.
 *
 * @module
 */
import { type Command, parseCommand, type ParsedFlags, usage, UsageError } from "../cli/flags.ts";
import { runCli } from "../cli/run.ts";
import {
  ACTORS_COMMAND,
  CLUSTER_COMMAND,
  COLLECTIVES_COMMAND,
  FAULTS_COMMAND,
  OVERLAP_COMMAND,
  QUALITY_COMMAND,
  REPORT_COMMAND,
  SCENARIOS_COMMAND,
  SIMULATE_COMMAND,
  SOAK_COMMAND,
} from "./commands.ts";

/**
 * A benchmark's entry point: parses its command line, prints its usage and
 * returns on `--help`, else runs and prints its figures.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export type BenchMain = (args: string[]) => Promise<void>;

/** One benchmark of `deno task bench`. */
export interface Benchmark {
  /** One line on what it measures (its command's summary). */
  summary: string;
  /** Its command line: name, summary and flags. */
  command: Command;
  /** Loads its module (only when it is run) and returns its entry point. */
  load: () => Promise<BenchMain>;
}

function benchmark(command: Command, load: () => Promise<BenchMain>): Benchmark {
  return { summary: command.summary, command, load };
}

/** Every benchmark by name, in the order `deno task bench --help` lists them. */
export const BENCHMARKS: Readonly<Record<string, Benchmark>> = {
  actors: benchmark(ACTORS_COMMAND, async () => (await import("./actors.ts")).runActorsBench),
  collectives: benchmark(
    COLLECTIVES_COMMAND,
    async () => (await import("./collectives.ts")).runCollectivesBench,
  ),
  quality: benchmark(QUALITY_COMMAND, async () => (await import("./quality.ts")).runQualityBench),
  overlap: benchmark(OVERLAP_COMMAND, async () => (await import("./overlap.ts")).runOverlapBench),
  scenarios: benchmark(
    SCENARIOS_COMMAND,
    async () => (await import("./scenarios.ts")).runScenariosBench,
  ),
  report: benchmark(REPORT_COMMAND, async () => (await import("./report.ts")).runReportBench),
  simulate: benchmark(
    SIMULATE_COMMAND,
    async () => (await import("./simulate.ts")).runSimulateBench,
  ),
  cluster: benchmark(CLUSTER_COMMAND, async () => (await import("./cluster.ts")).runClusterBench),
  faults: benchmark(FAULTS_COMMAND, async () => (await import("./faults.ts")).runFaultsBench),
  soak: benchmark(SOAK_COMMAND, async () => (await import("./soak.ts")).runSoakBench),
};

const NAMES = Object.keys(BENCHMARKS).join(", ");

/** `deno task bench` itself: a benchmark's name first, or `--help`. */
export const BENCH_COMMAND: Command = {
  name: "deno task bench NAME",
  summary: "Runs one benchmark; deno task bench NAME --help lists its flags.",
  flags: {},
  epilog: [
    "benchmarks:",
    ...Object.entries(BENCHMARKS).map(([name, b]) => `  ${name.padEnd(13)}${b.summary}`),
  ].join("\n"),
};

/** Parses a command line that starts with a flag, naming the benchmarks in its errors. */
function parseOwnFlags(args: string[]): ParsedFlags {
  try {
    return parseCommand(BENCH_COMMAND, args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    throw new UsageError(`${e.message}; or name a benchmark first: ${NAMES}`);
  }
}

/**
 * The CLI: runs the benchmark named first with the rest of the command line;
 * returns the exit code, expected failures are thrown for {@linkcode runCli}.
 *
 * @throws {UsageError} no benchmark or an unknown one, or a bad command line.
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name.startsWith("-")) {
    if (parseOwnFlags(args).help) {
      console.log(usage(BENCH_COMMAND));
      return 0;
    }
    throw new UsageError(`name a benchmark: deno task bench NAME, NAME one of ${NAMES}`);
  }
  if (!Object.hasOwn(BENCHMARKS, name)) {
    throw new UsageError(`unknown benchmark ${JSON.stringify(name)}; choose one of: ${NAMES}`);
  }
  await (await BENCHMARKS[name].load())(rest);
  return 0;
}

if (import.meta.main) await runCli(main);
