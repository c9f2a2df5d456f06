import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  type CheckpointContents,
  CheckpointError,
  checkpointName,
  type HostTensor,
  loadCheckpoint,
  loadLatestValid,
  mergeShards,
  saveCheckpoint,
  shardExperts,
} from "../models/checkpoint.ts";

const E = 4;

function tensor(shape: number[], seed: number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 100 + i)) };
}

/** A whole (global) model: dense tensors and E experts in block 1. */
function globalParams(step: number): Map<string, HostTensor> {
  const m = new Map<string, HostTensor>([
    ["wte", tensor([16, 4], step)],
    ["blocks.0.ln1.g", tensor([4], step + 1)],
    ["blocks.0.attn.wq", tensor([4, 4], step + 2)],
    ["blocks.1.moe.gate.w", tensor([4, E], step + 3)],
  ]);
  for (let e = 0; e < E; e++) {
    m.set(`blocks.1.moe.experts.${e}.w1`, tensor([4, 8], step + 10 + e));
    m.set(`blocks.1.moe.experts.${e}.w2`, tensor([8, 4], step + 20 + e));
  }
  return m;
}

function contents(step: number): CheckpointContents {
  const params = globalParams(step);
  const moments = new Map<string, HostTensor>();
  for (const [name, t] of params) {
    moments.set(`${name}.adam_m`, tensor(t.shape, step + 0.5));
    moments.set(`${name}.adam_v`, tensor(t.shape, step + 0.25));
  }
  return {
    params,
    optimizer: { step, tensors: moments },
    config: { variant: "scmoe", pos: 2, experts: E },
    state: { step, seed: 11, ranks: 2, extra: { skipped: 0 } },
  };
}

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "ckpt-test-" });
}

function flipByte(path: string, at: number) {
  const bytes = Deno.readFileSync(path);
  bytes[at] ^= 0x10;
  Deno.writeFileSync(path, bytes);
}

Deno.test("save then load round-trips everything; manifest checksums are the files' SHA-256", async () => {
  const dir = tempDir();
  const saved = contents(100);
  const path = await saveCheckpoint(dir, saved);
  assert.equal(path, `${dir}/ckpt-000100`);
  assert.equal(Deno.readTextFileSync(`${dir}/latest`), "ckpt-000100\n");
  assert.deepEqual(
    [...Deno.readDirSync(path)].map((e) => e.name).sort(),
    ["config.json", "manifest.json", "model.safetensors", "optimizer.safetensors", "state.json"],
  );
  const manifest = JSON.parse(Deno.readTextFileSync(`${path}/manifest.json`));
  for (const file of ["model.safetensors", "optimizer.safetensors", "config.json", "state.json"]) {
    const bytes = Deno.readFileSync(`${path}/${file}`);
    assert.equal(manifest.files[file].sha256, createHash("sha256").update(bytes).digest("hex"));
    assert.equal(manifest.files[file].bytes, bytes.length);
  }
  assert.deepEqual(JSON.parse(Deno.readTextFileSync(`${path}/config.json`)), saved.config);
  assert.deepEqual(await loadCheckpoint(path), saved);
  const found = await loadLatestValid(dir);
  assert.equal(found?.path, path);
  assert.deepEqual(found?.skipped, []);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a flipped bit or a truncated file is detected; loadLatestValid falls back", async () => {
  const dir = tempDir();
  await saveCheckpoint(dir, contents(100));
  await saveCheckpoint(dir, contents(200));
  await saveCheckpoint(dir, contents(300));
  const p300 = `${dir}/ckpt-000300`;
  const p200 = `${dir}/ckpt-000200`;
  flipByte(`${p300}/model.safetensors`, 200);
  await assert.rejects(() => loadCheckpoint(p300), (e: Error) => {
    assert.ok(e instanceof CheckpointError);
    assert.match(
      e.message,
      /^\S+\/ckpt-000300\/model\.safetensors: checksum mismatch \(sha256 [0-9a-f]{12}…, manifest [0-9a-f]{12}…\)$/,
    );
    return true;
  });
  const size = Deno.statSync(`${p200}/optimizer.safetensors`).size;
  Deno.truncateSync(`${p200}/optimizer.safetensors`, size - 100);
  await assert.rejects(() => loadCheckpoint(p200), {
    name: "CheckpointError",
    message: `${p200}/optimizer.safetensors: ${
      size - 100
    } bytes, manifest says ${size} (truncated or overwritten)`,
  });
  const found = await loadLatestValid(dir);
  assert.equal(found?.path, `${dir}/ckpt-000100`);
  assert.deepEqual(found?.contents, contents(100));
  assert.equal(found?.skipped.length, 2);
  assert.match(found!.skipped[0], /ckpt-000300\/model\.safetensors: checksum mismatch/);
  assert.match(found!.skipped[1], /ckpt-000200\/optimizer\.safetensors: \d+ bytes, manifest says/);

  Deno.removeSync(`${dir}/ckpt-000100/state.json`);
  await assert.rejects(() => loadLatestValid(dir), (e: Error) => {
    assert.ok(e instanceof CheckpointError);
    assert.ok(e.message.startsWith(`no valid checkpoint in ${dir}: `));
    assert.ok(e.message.endsWith(`${dir}/ckpt-000100/state.json: missing`));
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a crash during a save never becomes latest, and the next save clears its debris", async () => {
  const dir = tempDir();
  await saveCheckpoint(dir, contents(100));
  // crash while writing files into the temporary directory
  Deno.mkdirSync(`${dir}/.tmp-ckpt-000200-dead`);
  Deno.writeFileSync(`${dir}/.tmp-ckpt-000200-dead/model.safetensors`, new Uint8Array(10));
  // a checkpoint directory that was never committed (no manifest), newer than latest
  Deno.mkdirSync(`${dir}/ckpt-000200`);
  Deno.writeFileSync(`${dir}/ckpt-000200/model.safetensors`, new Uint8Array(10));
  // an interrupted pointer update
  Deno.writeTextFileSync(`${dir}/.latest-dead`, "ckpt-000200\n");

  let found = await loadLatestValid(dir);
  assert.equal(found?.path, `${dir}/ckpt-000100`);
  assert.deepEqual(found?.skipped, [], "uncommitted newer directories are not even tried");

  Deno.removeSync(`${dir}/latest`); // pointer lost: every checkpoint is a candidate
  found = await loadLatestValid(dir);
  assert.equal(found?.path, `${dir}/ckpt-000100`);
  assert.deepEqual(found?.skipped, [`${dir}/ckpt-000200/manifest.json: missing`]);

  await saveCheckpoint(dir, contents(200)); // replaces the partial directory
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
    ["ckpt-000100", "ckpt-000200", "latest"],
  );
  assert.deepEqual((await loadLatestValid(dir))?.contents, contents(200));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("latest naming a missing checkpoint, keep, and an empty directory", async () => {
  const dir = tempDir();
  assert.equal(await loadLatestValid(dir), null);
  assert.equal(await loadLatestValid(`${dir}/absent`), null);
  for (const step of [1, 2, 3, 4, 5]) await saveCheckpoint(dir, contents(step), { keep: 2 });
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
    [checkpointName(4), checkpointName(5), "latest"],
  );
  Deno.removeSync(`${dir}/ckpt-000005`, { recursive: true });
  const found = await loadLatestValid(dir);
  assert.equal(found?.contents.state.step, 4);
  assert.deepEqual(found?.skipped, [`${dir}/ckpt-000005: missing`]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("a checkpoint saved by 2 ranks loads on 1 and on 4 ranks", async () => {
  const dir = tempDir();
  const whole = contents(50);
  // each of 2 ranks holds the dense tensors and its 2 experts; the driver merges them
  const rankParams = [0, 1].map((r) =>
    new Map(shardExperts(whole.params.keys(), r, 2, E).map((n) => [n, whole.params.get(n)!]))
  );
  assert.equal(rankParams[0].size, 4 + 4);
  const rankMoments = [0, 1].map((r) =>
    new Map(
      shardExperts(whole.optimizer.tensors.keys(), r, 2, E).map((
        n,
      ) => [n, whole.optimizer.tensors.get(n)!]),
    )
  );
  await saveCheckpoint(dir, {
    ...whole,
    params: mergeShards(rankParams),
    optimizer: { step: 50, tensors: mergeShards(rankMoments) },
  });

  const one = await loadLatestValid(dir, { shard: { rank: 0, size: 1, numExperts: E } });
  assert.deepEqual(one?.contents, whole);

  const four = await Promise.all(
    [0, 1, 2, 3].map((rank) => loadLatestValid(dir, { shard: { rank, size: 4, numExperts: E } })),
  );
  four.forEach((f, rank) => {
    const params = f!.contents.params;
    assert.deepEqual(
      [...params.keys()].filter((n) => n.includes("experts")).sort(),
      [`blocks.1.moe.experts.${rank}.w1`, `blocks.1.moe.experts.${rank}.w2`],
    );
    for (const [name, t] of params) assert.deepEqual(t, whole.params.get(name), name);
    assert.equal(f!.contents.optimizer.tensors.size, 2 * params.size);
    for (const [name, t] of f!.contents.optimizer.tensors) {
      assert.deepEqual(t, whole.optimizer.tensors.get(name), name);
    }
    assert.equal(f!.contents.optimizer.step, 50);
  });
  await assert.rejects(() => loadLatestValid(dir, { shard: { rank: 0, size: 1, numExperts: 2 } }), {
    name: "RangeError",
    message: `${dir}/ckpt-000050: tensor blocks.1.moe.experts.2.w1 is past the 2 experts asked for`,
  });
  Deno.removeSync(dir, { recursive: true });
});
