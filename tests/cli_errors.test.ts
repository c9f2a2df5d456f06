/**
 * Expected failures of the entry points end in one line `error: ...` and a
 * non-zero exit, with no stack trace and nothing half-done: a missing
 * nats-server, an unreachable NATS, a backend the machine lacks, a software
 * WebGPU adapter, a missing or truncated checkpoint.
 */
import assert from "node:assert/strict";
import { denoRun, type RunResult } from "./helpers/deno_run.ts";
import { init, RankGroup, resolveConfig, shutdown } from "../mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Exit 1, and stderr one line starting `error: ` and matching `pattern`. */
function assertOneLine(run: RunResult, pattern: RegExp): void {
  const lines = run.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(run.code, 1, run.stderr);
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(run.stderr, /Uncaught|^\s+at /m);
}

/** A train command line that would write into a fresh folder of `tmp`. */
const train = (tmp: string, ...args: string[]) =>
  denoRun("cli/train.ts", [...args, "--steps", "2", "--out", `${tmp}/${crypto.randomUUID()}`], {
    cwd: ROOT,
  });

Deno.test("train: a missing nats-server, an unreachable NATS, a missing backend", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cli_errors_" });
  try {
    const noServer = await denoRun("cli/train.ts", ["--cluster", "nats", "--out", `${tmp}/a`], {
      cwd: ROOT,
      env: { PATH: "/nonexistent" },
    });
    assertOneLine(noServer, /nats-server not found on PATH: install it \(apt-get install/);
    assertOneLine(
      await train(tmp, "--cluster", "nats://127.0.0.1:1"),
      /^error: cannot reach NATS at nats:\/\/127\.0\.0\.1:1: connection refused$/,
    );
    assertOneLine(
      await train(tmp, "--backend", "tensorflow"),
      /^error: tensorflow: @tensorflow\/tfjs-node is not installed; add it with `deno add /,
    );
    // Nothing was written for any of them.
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("train: --backend webgpu without a GPU is refused unless asked for", async () => {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  const info = (adapter as { info?: { isFallbackAdapter?: boolean; description?: string } } | null)
    ?.info;
  const hardware = adapter && !info?.isFallbackAdapter &&
    !/llvmpipe|lavapipe|softpipe|swiftshader/i.test(info?.description ?? "");
  // This test's machines have no GPU: Deno offers a software adapter or none.
  assert.ok(
    !hardware,
    `a hardware adapter (${info?.description}): this test needs a machine without`,
  );
  const tmp = await Deno.makeTempDir({ prefix: "cli_errors_" });
  try {
    assertOneLine(
      await train(tmp, "--backend", "webgpu"),
      /^error: webgpu: (no GPU adapter found|only a software adapter .* --allow-software-webgpu|this Deno has no navigator\.gpu)/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("generate: a missing or truncated checkpoint, before any text", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cli_errors_" });
  try {
    const missing = await denoRun(
      "cli/generate.ts",
      ["--checkpoint", `${tmp}/none`, "--prompt", "The jury"],
      { cwd: ROOT },
    );
    assertOneLine(missing, /no checkpoint in /);
    assert.equal(missing.stdout, "", "the prompt is not printed before the error");

    const model = resolveConfig({ nEmbd: 16, nHead: 2, blockSize: 8, variant: "top2" });
    await init({ cluster: "local" });
    try {
      const { group } = await RankGroup.start(
        {
          model,
          seed: 1,
          backend: "wasm",
          data: { seq: 8, batch: 2 },
          optimizer: { lr: 1e-3, warmup: 1, total: 2 },
        },
        2,
        model,
      );
      await group.save(`${tmp}/run`, { step: 1, seed: 1, ranks: 2 }, { model });
    } finally {
      await shutdown();
    }
    const file = `${tmp}/run/ckpt-000001/model.safetensors`;
    const bytes = await Deno.readFile(file);
    await Deno.writeFile(file, bytes.subarray(0, bytes.length >> 1));
    const truncated = await denoRun(
      "cli/generate.ts",
      ["--checkpoint", `${tmp}/run`, "--prompt", "The jury"],
      { cwd: ROOT },
    );
    assertOneLine(truncated, /model\.safetensors/);
    assert.equal(truncated.stdout, "", "the prompt is not printed before the error");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
