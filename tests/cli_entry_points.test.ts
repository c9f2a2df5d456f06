/**
 * Every command-line entry point, run as a user would (a child process), on
 * three command lines that must end before any work: `--help` (the usage,
 * exit 0), an unknown flag and a bad value (one line `error: ...` naming the
 * flag, exit 2, no stack trace). The benchmarks come from `deno task bench
 * --help`'s own list, so a new one is covered (and must be given a bad value
 * below).
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
/** A case still running after this long has started working: it fails instead of hanging. */
const CASE_TIMEOUT_MS = 60_000;

/** Each benchmark's one-line summary by name, as `deno task bench --help` lists them. */
const BENCHMARKS = benchmarkList((await run("bench/main.ts", ["--help"])).stdout);

function benchmarkList(help: string): Map<string, string> {
  const at = help.indexOf("\nbenchmarks:\n");
  assert.ok(at >= 0, `no list of benchmarks in:\n${help}`);
  const rows = help.slice(at + "\nbenchmarks:\n".length).split("\n").filter((l) => l !== "");
  return new Map(rows.map((row) => {
    const m = row.match(/^ {2}(\S+) +(\S.*)$/);
    assert.ok(m, `not a benchmark row: ${JSON.stringify(row)}`);
    return [m[1], m[2]];
  }));
}

/** One entry point: the script and arguments before the flags under test. */
interface EntryPoint {
  /** How the test names it. */
  label: string;
  script: string;
  /** Arguments before the flags under test (a benchmark's name). */
  prefix: string[];
  /** A command line with a bad value, and the text the error line must start with. */
  bad: { args: string[]; error: string };
  /** What `--help` must print besides starting with `usage:`. */
  helpLists?: string[];
  /** A benchmark's summary in `deno task bench --help`: its own `--help` must say the same. */
  summary?: string;
}

/** A bad value of a flag each benchmark really has. */
const BENCH_BAD_VALUES: Record<string, { args: string[]; error: string }> = {
  actors: { args: ["--cluster", "bogus"], error: "error: --cluster must be one of local, nats" },
  collectives: { args: ["--quick=yes"], error: "error: --quick takes no value" },
  quality: { args: ["--quick=yes"], error: "error: --quick takes no value" },
  overlap: { args: ["--from", "no-such-dir"], error: "error: --from must be a directory" },
  scenarios: { args: ["--link-model=1"], error: "error: --link-model takes no value" },
  report: { args: ["--name", "../elsewhere"], error: "error: --name must be a directory name" },
  faults: { args: ["--quick=yes"], error: "error: --quick takes no value" },
  simulate: { args: ["--hardware", "bogus"], error: "error: --hardware must be one of here" },
  cluster: { args: ["--rate", "0"], error: "error: --rate must be a number in (0, 10000]" },
  soak: { args: ["--json=yes"], error: "error: --json takes no value" },
};

const ENTRY_POINTS: EntryPoint[] = [
  {
    label: "cli/train.ts",
    script: "cli/train.ts",
    prefix: [],
    bad: { args: ["--steps", "-1"], error: "error: --steps must be a positive integer" },
  },
  {
    label: "cli/generate.ts",
    script: "cli/generate.ts",
    prefix: [],
    bad: {
      args: ["--checkpoint", "runs/none", "--prompt", "x", "--max-tokens", "-1"],
      error: "error: --max-tokens must be a positive integer",
    },
  },
  {
    label: "cli/agent.ts",
    script: "cli/agent.ts",
    prefix: [],
    bad: {
      args: ["--nats", "http://127.0.0.1:4222"],
      error: "error: --nats must be nats://host:port[,...]",
    },
  },
  {
    label: "cli/plan.ts",
    script: "cli/plan.ts",
    prefix: [],
    bad: { args: ["--ep", "0"], error: "error: --ep must be an integer from 1 to 65536" },
  },
  {
    label: "bench/main.ts",
    script: "bench/main.ts",
    prefix: [],
    bad: { args: ["no-such-bench"], error: 'error: unknown benchmark "no-such-bench"' },
    helpLists: [...BENCHMARKS.keys()],
  },
  ...[...BENCHMARKS].map(([name, summary]) => ({
    label: `bench/main.ts ${name}`,
    script: "bench/main.ts",
    prefix: [name],
    bad: BENCH_BAD_VALUES[name] ?? { args: [], error: `(no bad value for ${name} in the test)` },
    summary,
  })),
  {
    label: "bench/collectives.ts",
    script: "bench/collectives.ts",
    prefix: [],
    bad: BENCH_BAD_VALUES.collectives,
  },
  {
    label: "harness/multihost_driver.ts",
    script: "harness/multihost_driver.ts",
    prefix: [],
    bad: {
      args: [
        "--cluster",
        "nats://127.0.0.1:1",
        "--hosts",
        "a",
        "--out",
        "x",
        "--heartbeat-ms",
        "-1",
      ],
      error: "error: --heartbeat-ms must be a positive integer",
    },
  },
];

/** What a finished child printed, and how it ended. */
interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(script: string, args: string[]): Promise<Ran> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--initial-heap-size=128", script, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CASE_TIMEOUT_MS),
  }).output().catch((e) => e as Error);
  if (output instanceof Error) {
    return { code: -1, stdout: "", stderr: `still running after ${CASE_TIMEOUT_MS} ms: ${output}` };
  }
  const { code, stdout, stderr } = output;
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/** Lines of stderr less Deno's own notices (npm downloads and install warnings). */
function stderrLines(stderr: string): string[] {
  return stderr.split("\n").map((l) => l.trimEnd()).filter((l) =>
    l !== "" && !/^(Download|Initialize|Warning|[╭│╰])/.test(l)
  );
}

/** One command line of an entry point and what it must do. */
interface Case {
  name: string;
  script: string;
  args: string[];
  check: (r: Ran) => void;
}

function noTrace(r: Ran): void {
  assert.ok(!/Uncaught|^\s+at /m.test(r.stderr), `a stack trace:\n${r.stderr}`);
}

function oneErrorLine(start: string) {
  return (r: Ran) => {
    noTrace(r);
    assert.equal(r.code, 2, `exit code ${r.code}; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    const lines = stderrLines(r.stderr);
    assert.equal(lines.length, 1, `not one line on stderr:\n${r.stderr}`);
    assert.ok(lines[0].startsWith(start), `${JSON.stringify(lines[0])} should start ${start}`);
    assert.equal(r.stdout, "", "nothing on stdout");
  };
}

const CASES: Case[] = ENTRY_POINTS.flatMap((e) => [
  {
    name: `${e.label} --help`,
    script: e.script,
    args: [...e.prefix, "--help"],
    check: (r: Ran) => {
      noTrace(r);
      assert.equal(r.code, 0, `exit code ${r.code}; stderr:\n${r.stderr}`);
      assert.ok(r.stdout.startsWith("usage: "), r.stdout);
      for (const name of e.helpLists ?? []) {
        assert.match(r.stdout, new RegExp(`^  ${name} +\\S`, "m"), `lists ${name}`);
      }
      if (e.summary !== undefined) benchmarkHelp(e.prefix[0], e.summary, r.stdout);
      const errors = stderrLines(r.stderr).filter((l) => /^(error|Uncaught)/.test(l));
      assert.deepEqual(errors, [], r.stderr);
    },
  },
  {
    name: `${e.label} --no-such-flag`,
    script: e.script,
    args: [...e.prefix, "--no-such-flag"],
    check: oneErrorLine("error: unknown flag --no-such-flag"),
  },
  {
    name: `${e.label} ${e.bad.args.join(" ")}`,
    script: e.script,
    args: [...e.prefix, ...e.bad.args],
    check: oneErrorLine(e.bad.error),
  },
]).concat([{
  name: "bench/main.ts (no benchmark)",
  script: "bench/main.ts",
  args: [],
  check: oneErrorLine("error: name a benchmark: deno task bench NAME, NAME one of actors"),
}]);

/**
 * A benchmark's `--help`: named after it, its summary the one in `deno task
 * bench --help` on one short line, each flag's help on one line.
 */
function benchmarkHelp(name: string, summary: string, help: string): void {
  const [usage, said, blank, ...rest] = help.trimEnd().split("\n");
  assert.equal(usage, `usage: deno task bench ${name} [flags]`);
  assert.equal(said, summary);
  assert.ok(summary.length <= 90, `${name}: a summary of ${summary.length} characters`);
  assert.equal(blank, "");
  const flags = rest.slice(0, rest.indexOf(""));
  assert.ok(flags.some((l) => l.startsWith("  --help ")), `${name} lists --help`);
  for (const line of flags) assert.match(line, /^ {2}--[a-z-]+( [A-Z]+)? +\S/, `${name}: ${line}`);
}

Deno.test("every benchmark is given a bad value to try", () => {
  assert.ok(BENCHMARKS.size >= 10, `${BENCHMARKS.size} benchmarks listed`);
  for (const name of BENCHMARKS.keys()) {
    assert.ok(BENCH_BAD_VALUES[name], `give ${name} a bad value in BENCH_BAD_VALUES`);
  }
});

Deno.test("every entry point: --help, an unknown flag and a bad value end before any work", async (t) => {
  // Run in batches of 4 child processes, then check each case as a step of its own.
  const results: Ran[] = [];
  for (let i = 0; i < CASES.length; i += 4) {
    results.push(...await Promise.all(CASES.slice(i, i + 4).map((c) => run(c.script, c.args))));
  }
  for (const [i, c] of CASES.entries()) {
    await t.step(c.name, () => c.check(results[i]));
  }
});
