/**
 * The command line of every benchmark, in one light module (it imports
 * nothing heavy), so `deno task bench --help` can list them without loading
 * the benchmarks. Each benchmark parses its arguments with its command here
 * ({@linkcode parseCommand}) and prints {@linkcode usage} on `--help`.
 *
 * @module
 */
import { type Command, type ParsedFlags, UsageError } from "../cli/flags.ts";

/** The line after every benchmark's flags. */
const EPILOG = "Add --debug to show the stack trace of an expected failure.";

const JSON_FLAG = {
  boolean: true,
  help: "print JSON lines {bench, case, metric, value, unit}, not a table",
} as const;

/**
 * The clusters `deno task bench actors` measures: `local` (Workers), `nats`
 * (processes; same-host messages on direct links, NATS the control plane)
 * and `nats-bus` (the same with every message through nats-server,
 * `directLinks: false`).
 */
export const ACTORS_CLUSTERS = ["local", "nats", "nats-bus"] as const;

/** `deno task bench actors`. */
export const ACTORS_COMMAND: Command = {
  name: "deno task bench actors",
  summary: "Actor call rates and payload round trips on each cluster, beside Ray's figures.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "fewer calls and round trips: a smoke run" },
    cluster: {
      arg: "NAME",
      help: `one cluster only: ${ACTORS_CLUSTERS.join("|")} (default all three)`,
    },
  },
  epilog: EPILOG,
};

/** `deno task bench collectives`. */
export const COLLECTIVES_COMMAND: Command = {
  name: "deno task bench collectives",
  summary: "Time, algbw and busbw of each collective and size, local and nats, shaped or not.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "fewer sizes and repetitions: a smoke run" },
  },
  epilog: EPILOG,
};

/** `deno task bench quality`. */
export const QUALITY_COMMAND: Command = {
  name: "deno task bench quality",
  summary: "Loss of every variant over paired seeds, 95% intervals vs top-2, routing health.",
  flags: {
    json: JSON_FLAG,
    quick: {
      boolean: true,
      help: "2 seeds of 40 steps of 8x32 bytes a variant, a few minutes: a smoke run " +
        "(default: 3 seeds of 300 steps of 16x64, 1 more of the other convention, about " +
        "45 minutes on 2 cores)",
    },
    seeds: { arg: "N", help: "paired seeds per variant, at least 2 (default 3; --quick 2)" },
    steps: { arg: "N", help: "training steps of every run (default 300; --quick 40)" },
    "aux-convention": {
      arg: "NAME",
      help: "the balancing-loss convention of the main table: sum (each MoE layer weighted " +
        "0.01, the paper's reading) | mean (default sum)",
    },
    "other-seeds": {
      arg: "N",
      help: "seeds run again under the other convention, to see whether it changes the " +
        "ranking; 0 skips it (default 1)",
    },
    jobs: { arg: "N", help: "training runs at once, each a 1-rank process (default 2)" },
    cases: {
      arg: "LIST",
      help: "variants to run, comma-separated (default all; top2 is always run)",
    },
    out: {
      arg: "DIR",
      help: "also write DIR/report.md, DIR/quality.json and DIR/quality.jsonl",
    },
    runs: {
      arg: "DIR",
      help: "the runs' folders (default runs/quality-<UTC time>); a run already finished " +
        "there (its summary.json) is read, not trained again",
    },
    from: {
      arg: "DIR",
      help: "run nothing: analyse DIR/quality.json's runs again and rewrite its report " +
        "(into --out DIR2 if given)",
    },
  },
  epilog: EPILOG,
};

/** `deno task bench overlap`. */
export const OVERLAP_COMMAND: Command = {
  name: "deno task bench overlap",
  summary: "Communication each variant hides (hidden fraction, eta) on 2 ranks, shaped links.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "a smaller model and batch: a smoke run" },
    out: {
      arg: "DIR",
      help: "also write DIR/overlap_trace.json (Chrome trace) and DIR/overlap_timeline.svg",
    },
    from: {
      arg: "DIR",
      help: "run nothing: draw DIR/overlap_timeline.svg again from DIR/overlap_trace.json",
    },
    explain: {
      boolean: true,
      help: "run nothing: print which compute steps each variant's all-to-alls overlap",
    },
  },
  epilog: EPILOG,
};

/** `deno task bench scenarios`. */
export const SCENARIOS_COMMAND: Command = {
  name: "deno task bench scenarios",
  summary: "Train and inference speed-ups over top-2 in the paper's bandwidth scenarios.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "a smaller model and fewer steps: a smoke run" },
    "link-model": {
      boolean: true,
      help: "shape links with the link model on Workers, not tc (default tc when root)",
    },
  },
  epilog: EPILOG,
};

/** `deno task bench report`. */
export const REPORT_COMMAND: Command = {
  name: "deno task bench report",
  summary: "Scenarios and quality into bench/results/NAME/report.md, with charts and timelines.",
  flags: {
    quick: { boolean: true, help: "the --quick runs of the benchmarks: a smoke run" },
    name: {
      arg: "NAME",
      help: "directory under bench/results/: letters, digits, '.', '_', '-' (default latest)",
    },
    "skip-quality": { boolean: true, help: "leave out the quality benchmark" },
    "link-model": {
      boolean: true,
      help: "shape links with the link model on Workers, not tc (default tc when root)",
    },
    from: {
      arg: "DIR",
      help: "run nothing: draw the charts of the report in DIR again from its saved data",
    },
  },
  epilog: EPILOG,
};

/** `deno task bench simulate`. */
export const SIMULATE_COMMAND: Command = {
  name: "deno task bench simulate",
  summary: "The simulator: step time, exposed communication, speed-ups per hardware; its checks.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "a smaller grid (a30-pcie and h100-ib, base, EP 8 and 64)" },
    hardware: { arg: "NAME", help: "one hardware preset only (default every one)" },
    model: { arg: "NAME", help: "one model only (default base, gpt2-moe, gpt3-moe-xl)" },
    ep: {
      arg: "N",
      help: "one expert-parallel size only, a positive integer (default 8, 64, 256)",
    },
    "validate-only": { boolean: true, help: "only the checks against measurements and papers" },
    measure: {
      boolean: true,
      help: "also measure this machine now: wasm rates and MFU of a short tiny training run",
    },
    ranks: {
      boolean: true,
      help: "also train 2 and 4 rank Workers now (link model) and check the simulator on them",
    },
  },
  epilog: EPILOG,
};

/** `deno task bench cluster`. */
export const CLUSTER_COMMAND: Command = {
  name: "deno task bench cluster",
  summary: "All-to-all busbw per host link on 2 and 4 hosts over NATS: one server or a cluster.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "256 KiB parts, 4 timed calls, no unshaped runs" },
    rate: {
      arg: "MBIT",
      help: "each host link's rate in Mbit/s, a number in (0, 10000] (default 20)",
    },
  },
  epilog: EPILOG,
};

/** `deno task bench faults`. */
export const FAULTS_COMMAND: Command = {
  name: "deno task bench faults",
  summary: "Each fault injected into a small run: survived, detect and recover ms, data lost.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "2,000 fuzzed frames instead of 10,000" },
  },
  epilog: EPILOG,
};

/** `deno task bench soak`. */
export const SOAK_COMMAND: Command = {
  name: "deno task bench soak",
  summary: "Memory of the driver and each rank over a long 2-rank run: growth per 100 steps.",
  flags: {
    json: JSON_FLAG,
    quick: { boolean: true, help: "160 steps instead of 1000" },
  },
  epilog: EPILOG,
};

/**
 * The value of a flag naming a path, `undefined` when absent.
 *
 * @throws {UsageError} the flag given empty.
 */
export function pathFlag(f: ParsedFlags, flag: string): string | undefined {
  if (!f.has(flag)) return undefined;
  const path = f.string(flag)!;
  if (path === "") throw new UsageError(`--${flag} must be a directory, not empty`);
  return path;
}

/**
 * The directory of a `--from DIR` flag, which must hold `file` (checked
 * before any work), `undefined` when absent.
 *
 * @throws {UsageError} the flag given empty, or DIR lacking `file`.
 */
export function fromFlag(f: ParsedFlags, flag: string, file: string): string | undefined {
  const dir = pathFlag(f, flag);
  if (dir === undefined) return undefined;
  try {
    Deno.statSync(`${dir}/${file}`);
  } catch {
    throw new UsageError(
      `--${flag} must be a directory holding ${file} (got ${JSON.stringify(dir)})`,
    );
  }
  return dir;
}
