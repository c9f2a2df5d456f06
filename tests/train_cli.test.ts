/**
 * `deno task train` end to end on a very small run: outputs, `--resume`
 * continuing the same loss curve, and bad command lines.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
/** A very small run: tiny shapes, 4 windows of 16 bytes a step. */
const SMALL = ["--steps", "4", "--batch", "4", "--seq", "16", "--eval-every", "2"];

async function trainCli(args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/train.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

async function metrics(dir: string): Promise<Record<string, number>[]> {
  return (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("train: a small run writes metrics, checkpoints and the perplexity; --resume continues the same curve", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "train_cli_" });
  try {
    const a = `${tmp}/a`;
    const run = await trainCli([...SMALL, "--ckpt-every", "2", "--trace-steps", "3", "--out", a]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^MoE communication hidden -?\d\.\d\d, eta -?\d\.\d\d, results handed to the compute thread \d+\.\d ms after arrival per step \(medians/m,
    );
    assert.match(run.stdout, new RegExp(`, trace ${a}/trace\\.json$`, "m"));
    assert.match(run.stdout, /^validation loss \d+\.\d{4}, perplexity \d+\.\d{2} after 4 steps/m);
    assert.match(
      run.stdout,
      new RegExp(`outputs: ${a}/metrics.jsonl, ${a}/summary.json, checkpoint ${a}/ckpt-000004`),
    );
    const straight = await metrics(a);
    assert.deepEqual(straight.map((m) => m.step), [1, 2, 3, 4]);
    // The run folder: the last metrics line holds the final evaluation, and summary.json agrees.
    const summary = JSON.parse(await Deno.readTextFile(`${a}/summary.json`));
    const printed = Number(/^validation loss (\S+),/m.exec(run.stdout)![1]);
    assert.ok(Number.isFinite(straight[3].val_loss), "the last line holds the final evaluation");
    assert.equal(summary.val_loss, straight[3].val_loss);
    assert.equal(summary.val_loss.toFixed(4), printed.toFixed(4));
    assert.ok(Math.abs(summary.val_ppl - Math.exp(summary.val_loss)) < 1e-9);
    assert.ok(summary.tokens_per_s > 0 && summary.step_ms > 0, JSON.stringify(summary));
    assert.ok(summary.overlap.hiddenFraction <= 1 && summary.overlap.handoffMs >= 0);
    // Model FLOP utilisation: the model's FLOPs per second of a step over the measured matmul rate.
    const { mfu } = summary;
    assert.ok(mfu.model_flops_per_step > 0 && mfu.matmul_flops_per_s > 1e8, JSON.stringify(mfu));
    assert.ok(
      Math.abs(mfu.model_flops_per_s - mfu.model_flops_per_step / (summary.step_ms / 1e3)) < 1,
    );
    assert.ok(mfu.mfu > 0 && mfu.mfu < 1, JSON.stringify(mfu));
    assert.deepEqual(
      [summary.config.variant, summary.config.pos, summary.config.steps, summary.config.batch],
      ["scmoe", 2, 4, 4],
    );
    assert.equal(summary.config.model.nEmbd, 64);
    assert.equal(summary.code.name, "@scmoe/actors");
    assert.ok(
      summary.code.commit === null || /^[0-9a-f]{12}(\+dirty)?$/.test(summary.code.commit),
      summary.code.commit,
    );
    for (const m of straight) {
      for (const key of ["loss", "aux_loss", "tokens_per_s", "drop_rate", "lr"]) {
        assert.ok(Number.isFinite(m[key]), `step ${m.step} ${key}: ${m[key]}`);
      }
    }
    assert.ok(Number.isFinite(straight[1].val_loss) && straight[1].val_ppl > 1);
    // Overlap figures of the MoE blocks (blocks 1 and 3 of the tiny preset), pooled and per block.
    for (const m of straight) {
      const o = m as unknown as Record<string, number> & { moe_blocks: Record<string, number>[] };
      // Exposed may pass comm: a wait ends when the result reaches the compute thread.
      assert.ok(o.comm_ms > 0 && o.exposed_ms >= 0 && o.compute_ms > 0, `${m.step}`);
      assert.ok(Math.abs(o.hidden_fraction - (1 - o.exposed_ms / o.comm_ms)) < 1e-9);
      assert.deepEqual(o.moe_blocks.map((b) => b.block), [1, 3]);
      const sum = (k: string) => o.moe_blocks.reduce((s, b) => s + b[k], 0);
      for (const k of ["compute_ms", "comm_ms", "exposed_ms"]) {
        assert.ok(Math.abs(sum(k) - o[k]) < 1e-6, `step ${m.step} ${k}: blocks sum to the total`);
      }
    }
    // The trace of step 3: a compute and a communication track for each rank, ops named.
    const trace = JSON.parse(await Deno.readTextFile(`${a}/trace.json`)).traceEvents as {
      ph: string;
      name: string;
      args?: { name?: string };
    }[];
    const names = trace.filter((e) => e.ph === "M" && e.name === "process_name")
      .map((e) => e.args?.name);
    assert.deepEqual(names, ["step 3 rank 0", "step 3 rank 1"]);
    const tracks = trace.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) =>
      e.args?.name
    );
    assert.ok(tracks.filter((t) => t === "compute").length === 2, JSON.stringify(tracks));
    assert.ok(tracks.filter((t) => t === "communication").length === 2, JSON.stringify(tracks));
    assert.ok(trace.some((e) => e.ph === "X" && e.name.includes("moe.gate.dispatch")));
    assert.ok(straight[3].loss < straight[0].loss, "the loss falls");
    assert.equal((await Deno.readTextFile(`${a}/latest`)).trim(), "ckpt-000004");
    assert.ok(await exists(`${a}/ckpt-000002/model.safetensors`));

    // A run that stopped after its step-2 checkpoint: drop the later one and resume.
    const b = `${tmp}/b`;
    await Deno.mkdir(b);
    for (const name of ["ckpt-000002", "metrics.jsonl"]) {
      await new Deno.Command("cp", { args: ["-r", `${a}/${name}`, `${b}/${name}`] }).output();
    }
    const resumed = await trainCli([...SMALL, "--resume", "--out", b]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resumed .*ckpt-000002/);
    const continued = await metrics(b);
    assert.deepEqual(continued.map((m) => m.step), [1, 2, 3, 4]);
    for (const i of [2, 3]) {
      assert.ok(
        Math.abs(continued[i].loss - straight[i].loss) < 1e-5,
        `step ${i + 1}: resumed ${continued[i].loss} vs straight ${straight[i].loss}`,
      );
      assert.equal(continued[i].lr, straight[i].lr);
    }
    const ppl = (out: string) => out.match(/perplexity (\S+)/)![1];
    assert.equal(ppl(resumed.stdout), ppl(run.stdout));

    // A fresh run into a directory holding one is refused before anything is written.
    const again = await trainCli([...SMALL, "--out", a]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already holds a run; pass --resume/);
    assert.equal((await metrics(a)).length, 4);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("train: a bad flag exits 2 with one line and writes nothing", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "train_cli_" });
  try {
    const out = `${tmp}/never`;
    const cases: [string[], string][] = [
      [["--ranks", "3", "--out", out], "--batch 16 must be a multiple of --ranks 3"],
      [["--variant", "top3", "--out", out], "--variant must be one of"],
      [["--resume"], "--resume needs --out DIR"],
    ];
    for (const [args, message] of cases) {
      const run = await trainCli(args);
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr.split("\n").filter(Boolean).length, 1, run.stderr);
      assert.ok(run.stderr.startsWith(`error: ${message}`), run.stderr);
      assert.equal(await exists(out), false);
    }
    const resume = await trainCli([...SMALL, "--resume", "--out", `${tmp}/empty`]);
    assert.equal(resume.code, 2);
    assert.match(resume.stderr, /^error: --resume: no checkpoint in /);
    assert.equal(await exists(`${tmp}/empty`), false);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
