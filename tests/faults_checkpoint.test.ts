/**
 * Damaged checkpoints end to end through the train CLI: a bit-flipped and a
 * truncated checkpoint are caught by their checksums and `--resume` goes on
 * from the newest valid one, on the same loss curve; a driver SIGKILLed at
 * random moments while it saves every step never leaves a half-written
 * checkpoint as `latest`. (The exact crash windows inside a save, file by
 * file, are covered deterministically by tests/checkpoint_dir.test.ts.)
 */
import assert from "node:assert/strict";
import { loadLatestValid } from "../models/checkpoint.ts";
import {
  assertSameCurve,
  killAfterSteps,
  metricLines,
  smallRun,
  trainCliChild,
} from "./helpers/faults.ts";

async function cli(args: string[]) {
  const r = await trainCliChild(args).done;
  assert.equal(r.code, 0, r.stderr);
  return r;
}

Deno.test("--resume skips a bit-flipped and a truncated checkpoint by checksum", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "faults_ckpt_" });
  try {
    const dir = `${tmp}/a`;
    await cli([...smallRun(6), "--ckpt-every", "2", "--out", dir]);
    const clean = await metricLines(dir);

    const flipped = `${dir}/ckpt-000006/model.safetensors`;
    const bytes = await Deno.readFile(flipped);
    bytes[bytes.length >> 1] ^= 0x10;
    await Deno.writeFile(flipped, bytes);
    const truncated = `${dir}/ckpt-000004/optimizer.safetensors`;
    await Deno.truncate(truncated, (await Deno.stat(truncated)).size - 7);

    const resumed = await cli([...smallRun(6), "--ckpt-every", "2", "--out", dir, "--resume"]);
    const warnings = resumed.stderr.split("\n").filter((l) => l.startsWith("warning: skipped"));
    assert.equal(warnings.length, 2, resumed.stderr);
    assert.match(warnings[0], /ckpt-000006\/model\.safetensors.*(sha|checksum|SHA)/i);
    assert.match(warnings[1], /ckpt-000004\/optimizer\.safetensors/);
    assert.match(resumed.stderr, /resumed .*ckpt-000002/);
    assertSameCurve(await metricLines(dir), clean);
    const found = await loadLatestValid(dir);
    assert.equal(found?.contents.state.step, 6);
    assert.deepEqual(found?.skipped, [], "the rewritten checkpoints verify");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("a driver killed at random moments while saving never leaves a bad latest", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "faults_crash_" });
  try {
    const run = [...smallRun(12), "--ckpt-every", "1"];
    await cli([...run, "--out", `${tmp}/clean`]);
    const dir = `${tmp}/crash`;
    for (const [i, steps] of [3, 6, 9].entries()) {
      const child = trainCliChild([...run, "--out", dir, ...(i > 0 ? ["--resume"] : [])]);
      // Kill the whole driver (ranks are its Workers) a few ms after a step is logged,
      // when it is gathering or writing that step's checkpoint.
      await killAfterSteps(child, dir, steps, { victim: child.pid, delayMs: Math.random() * 60 });
      assert.notEqual((await child.done).code, 0);
      const found = await loadLatestValid(dir);
      assert.ok(found, "a checkpoint survives");
      assert.deepEqual(found.skipped, [], `latest is complete after kill ${i + 1}`);
    }
    await cli([...run, "--out", dir, "--resume"]);
    assertSameCurve(await metricLines(dir), await metricLines(`${tmp}/clean`));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
