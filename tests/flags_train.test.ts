import assert from "node:assert/strict";
import { ConfigError, resolveTrainConfig, SIZES } from "../mod.ts";
import { flagLabel, parseTrainArgs, TRAIN_COMMAND } from "../cli/train.ts";
import { usage, UsageError } from "../cli/flags.ts";

/** What the CLI makes of a command line: the resolved config, and its own switches. */
function parseTrainFlags(args: string[], now?: Date) {
  const parsed = parseTrainArgs(args);
  const config = resolveTrainConfig(parsed.settings, { now, label: flagLabel });
  return { ...config, json: parsed.json, help: parsed.help };
}

function rejects(args: string[], message: string) {
  assert.throws(() => parseTrainFlags(args), (e: Error) => {
    // A bad value of one flag is the parser's; flags that do not fit together, the config's.
    assert.ok(e instanceof UsageError || e instanceof ConfigError, `${args.join(" ")}: ${e}`);
    assert.equal(e.message, message);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
}

Deno.test("no flags: ScMoE Pos-2, CG-1, 2 local ranks, tiny preset", () => {
  assert.deepEqual(parseTrainFlags([], new Date("2025-01-02T03:04:05.678Z")), {
    ...SIZES.tiny,
    variant: "scmoe",
    pos: 2,
    combiner: "cg1",
    ranks: 2,
    cluster: "local",
    backend: "wasm",
    allowSoftwareWebgpu: false,
    size: "tiny",
    seed: 1,
    capacityFactor: 2,
    auxConvention: "sum",
    moeShare: 1,
    collapseSteps: 10,
    data: { kind: "brown" },
    out: "runs/scmoe-pos2-20250102T030405",
    ckptEvery: 0,
    maxRestarts: 2,
    collectiveTimeoutS: 120,
    maxBadSteps: 5,
    traceSteps: [],
    resume: false,
    json: false,
    help: false,
  });
});

Deno.test("every flag is read, both --flag value and --flag=value", () => {
  const f = parseTrainFlags([
    "--variant=scmoe",
    "--pos",
    "3",
    "--combiner",
    "cg2",
    "--ranks=4",
    "--cluster",
    "nats://10.0.0.2:4222",
    "--backend",
    "tensorflow-gpu",
    "--size",
    "small",
    "--steps",
    "7",
    "--batch=8",
    "--seq",
    "32",
    "--lr",
    "1e-3",
    "--seed",
    "0",
    "--out",
    "/tmp/x",
    "--resume",
    "--ckpt-every",
    "5",
    "--eval-every",
    "0",
    "--experts",
    "8",
    "--capacity-factor",
    "2.5",
    "--max-restarts",
    "0",
    "--collective-timeout=2.5",
    "--max-bad-steps=9",
    "--trace-steps",
    "7,2,2",
    "--aux-convention",
    "mean",
    "--moe-share=1",
    "--collapse-steps",
    "3",
    "--data",
    "corpus.txt",
    "--json",
    "--allow-software-webgpu",
  ]);
  assert.deepEqual(f, {
    ...SIZES.small,
    variant: "scmoe",
    pos: 3,
    combiner: "cg2",
    ranks: 4,
    cluster: "nats://10.0.0.2:4222",
    backend: "tensorflow-gpu",
    allowSoftwareWebgpu: true,
    size: "small",
    steps: 7,
    batch: 8,
    seq: 32,
    lr: 0.001,
    seed: 0,
    out: "/tmp/x",
    ckptEvery: 5,
    maxRestarts: 0,
    collectiveTimeoutS: 2.5,
    maxBadSteps: 9,
    traceSteps: [2, 7],
    resume: true,
    evalEvery: 0,
    experts: 8,
    capacityFactor: 2.5,
    auxConvention: "mean",
    moeShare: 1,
    collapseSteps: 3,
    data: { kind: "text", path: "corpus.txt" },
    json: true,
    help: false,
  });
  assert.match(parseTrainFlags(["--variant", "top2"]).out, /^runs\/top2-\d{8}T\d{6}$/);
  assert.equal(parseTrainFlags(["--cluster", "nats"]).cluster, "nats");
  assert.equal(parseTrainFlags(["--cluster", "nats://host"]).cluster, "nats://host");
  assert.equal(parseTrainFlags(["--help"]).help, true);
});

Deno.test("enumerated flags name their allowed values", () => {
  rejects(
    ["--variant", "top3"],
    '--variant must be one of dense, top1, top2, se, dgmoe, scmoe (got "top3")',
  );
  rejects(["--pos", "4"], '--pos must be one of 1, 2, 3 (got "4")');
  rejects(["--combiner", "mul"], '--combiner must be one of cg1, add, cg2 (got "mul")');
  rejects(
    ["--backend", "cuda"],
    '--backend must be one of wasm, cpu, webgpu, tensorflow, tensorflow-gpu (got "cuda")',
  );
  rejects(["--size", "huge"], '--size must be one of tiny, small, base (got "huge")');
  for (
    const bad of ["tcp://h:1", "nats://", "nats://h:99999", "nats://u:p@h:1", "nats://h/x", "lokal"]
  ) {
    rejects(
      ["--cluster", bad],
      `--cluster must be one of local, nats, nats://host:port (got "${bad}")`,
    );
  }
});

Deno.test("numbers: integers, ranges and positive reals", () => {
  rejects(["--ranks", "0"], '--ranks must be a positive integer (got "0")');
  rejects(["--ranks", "2.5"], '--ranks must be a positive integer (got "2.5")');
  rejects(["--steps=-3"], '--steps must be a positive integer (got "-3")');
  rejects(["--batch", "1e3"], '--batch must be a positive integer (got "1e3")');
  rejects(["--seq", ""], '--seq must be a positive integer (got "")');
  rejects(["--seed", "x"], '--seed must be a non-negative integer (got "x")');
  rejects(["--eval-every=-1"], '--eval-every must be a non-negative integer (got "-1")');
  rejects(["--max-restarts=-1"], '--max-restarts must be a non-negative integer (got "-1")');
  rejects(["--max-bad-steps", "0"], '--max-bad-steps must be a positive integer (got "0")');
  rejects(
    ["--collective-timeout", "0"],
    '--collective-timeout must be a positive number (got "0")',
  );
  rejects(
    ["--experts", "99999999999999999999"],
    '--experts must be a positive integer (got "99999999999999999999")',
  );
  rejects(["--lr", "0"], '--lr must be a positive number (got "0")');
  rejects(["--lr", "fast"], '--lr must be a positive number (got "fast")');
  rejects(["--lr", "Infinity"], '--lr must be a positive number (got "Infinity")');
  rejects(["--capacity-factor", " "], '--capacity-factor must be a positive number (got " ")');
  for (const bad of ["0", "2,x", "1.5", "3,", ""]) {
    rejects(
      ["--trace-steps", bad],
      `--trace-steps must be steps as positive integers separated by commas (got ${
        JSON.stringify(bad)
      })`,
    );
  }
});

Deno.test("flags that do not fit together", () => {
  rejects(
    ["--batch", "10", "--ranks", "4", "--experts", "8"],
    "--batch 10 must be a multiple of --ranks 4 (each rank takes batch/ranks)",
  );
  rejects(
    ["--ranks", "3", "--batch", "12"],
    "--experts 4 must be a multiple of --ranks 3 (each rank holds experts/ranks)",
  );
  rejects(
    ["--variant", "top2", "--pos", "1"],
    "--pos applies only to --variant scmoe (got --variant top2)",
  );
  rejects(
    ["--variant", "dense", "--combiner", "add"],
    "--combiner applies only to --variant scmoe (got --variant dense)",
  );
  rejects(
    ["--variant", "top1", "--experts", "1", "--ranks", "1"],
    "--experts must be at least 2 for --variant top1 (got 1)",
  );
  rejects(["--out", ""], "--out must name a directory");
  rejects(["--steps", "4", "--trace-steps", "2,5"], "--trace-steps 5 is past --steps 4");
  rejects(["--resume"], "--resume needs --out DIR, the run to continue");
  // dense has no experts to share out
  assert.equal(parseTrainFlags(["--variant", "dense", "--ranks", "8", "--batch", "16"]).ranks, 8);
});

Deno.test("the quality flags: held-out Brown categories, split seed, aux convention, MoE sharing", () => {
  const f = parseTrainFlags([
    "--variant",
    "dgmoe",
    "--moe-share",
    "2",
    "--heldout",
    "h,R",
    "--split-seed",
    "4",
  ]);
  assert.deepEqual(f.data, { kind: "brown", heldoutCategories: ["h", "r"], splitSeed: 4 });
  assert.equal(f.moeShare, 2);
  assert.equal(f.auxConvention, "sum");
  rejects(
    ["--heldout", "h,z"],
    "--heldout must be Brown category letters separated by commas, not all of them " +
      '(a,b,c,d,e,f,g,h,j,k,l,m,n,p,r; got "h,z")',
  );
  rejects(["--data", "x.txt", "--heldout", "h"], "--heldout applies only to --data brown");
  rejects(["--data", "x.txt", "--split-seed", "2"], "--split-seed applies only to --data brown");
  rejects(
    ["--aux-convention", "median"],
    '--aux-convention must be one of sum, mean (got "median")',
  );
  rejects(
    ["--variant", "dgmoe", "--moe-share", "3"],
    "--moe-share 3 must divide the 2 MoE blocks of layers 4 (variant dgmoe)",
  );
  rejects(
    ["--variant", "dense", "--moe-share", "2"],
    "--moe-share 2 must divide the 0 MoE blocks of layers 4 (variant dense)",
  );
});

Deno.test("parser errors become one-line usage errors", () => {
  const all = "--variant, --pos, --combiner, --ranks, --cluster, --backend, " +
    "--allow-software-webgpu, --size, --data, --steps, " +
    "--batch, --seq, --lr, --seed, --out, --resume, --ckpt-every, --eval-every, --max-restarts, " +
    "--collective-timeout, --max-bad-steps, --trace-steps, --experts, --capacity-factor, " +
    "--aux-convention, --moe-share, --collapse-steps, --heldout, --split-seed, --json, --help";
  rejects(["--varient", "top1"], `unknown flag --varient (flags: ${all})`);
  rejects(["-v"], `unknown flag -v (flags: ${all})`);
  rejects(["scmoe"], `unexpected argument "scmoe": flags start with -- (flags: ${all})`);
  rejects(
    ["--ranks"],
    "--ranks needs a value: rank actors, a positive integer dividing --experts and --batch (default 2)",
  );
  rejects(
    ["--ranks", "--json"],
    "--ranks needs a value: rank actors, a positive integer dividing --experts and --batch (default 2)",
  );
  rejects(["--json=yes"], "--json takes no value");
  rejects(["--ranks", "2", "--ranks", "4"], "--ranks given 2 times; give it once");
});

Deno.test("usage lists every flag once", () => {
  const text = usage(TRAIN_COMMAND);
  assert.ok(text.startsWith("usage: deno task train [flags]\n"));
  const rows = text.split("\n").filter((l) => l.startsWith("  --"));
  assert.equal(rows.length, 31);
  assert.equal(new Set(rows.map((r) => r.split(/\s+/)[1])).size, 31);
  assert.match(
    text,
    /^ {2}--capacity-factor X {7}expert capacity factor, a positive number \(default 2\)$/m,
  );
  assert.match(text, /^ {2}--resume {18}continue from/m);
  assert.match(text, /^ {2}--allow-software-webgpu {3}with --backend webgpu: run on a software/m);
});
