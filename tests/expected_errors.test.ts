/**
 * Expected failures are typed errors with a one-line message naming the
 * problem and the fix, and come promptly: a missing nats-server, an
 * unreachable NATS URL, a backend that cannot run here, a damaged checkpoint.
 */
import { equal, match, ok } from "node:assert/strict";
import {
  Agent,
  init,
  isInitialized,
  NatsConnectError,
  NatsServerNotFoundError,
  startNatsServer,
} from "../actors/mod.ts";
import { connectNats } from "../actors/bus_nats.ts";
import { freePort } from "../actors/nats_server.ts";
import { BackendUnavailableError, CheckpointError, setupBackend } from "../models/mod.ts";
import { decodeSafetensors, loadCheckpoint, saveCheckpoint } from "../models/checkpoint.ts";

/** Asserts `e` is one line and matches `re`. */
function oneLine(e: Error, re: RegExp): void {
  match(e.message, re);
  ok(!e.message.includes("\n"), `more than one line: ${JSON.stringify(e.message)}`);
}

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = new (...args: any[]) => E;

/** Asserts `f` rejects with an instance of `cls` and returns the error. */
async function rejectsWith<E extends Error>(
  f: () => Promise<unknown>,
  cls: ErrorClass<E>,
): Promise<E> {
  const e = await f().then(() => null, (e: unknown) => e);
  ok(e instanceof cls, `expected ${cls.name}, got ${e instanceof Error ? e.stack : e}`);
  equal(e.name, cls.name);
  return e;
}

/** Asserts `e` is an instance of `cls`, named after it. */
function isA<E extends Error>(e: Error, cls: ErrorClass<E>): void {
  ok(e instanceof cls, `expected ${cls.name}, got ${e.stack}`);
  equal(e.name, cls.name);
}

/** Runs `f` and returns its rejection and how long it took. */
async function timedRejection(f: () => Promise<unknown>): Promise<{ e: Error; ms: number }> {
  const t0 = performance.now();
  const e = await f().then(
    () => new Error("did not reject"),
    (e: Error) => e,
  );
  return { e, ms: performance.now() - t0 };
}

// ---- nats-server missing ----

const NOT_FOUND =
  /^nats-server not found on PATH: install it \(apt-get install nats-server\) or pass a nats:\/\/ URL$/;

/** Runs `f` with PATH set to an empty directory (nothing else runs meanwhile: tests are sequential). */
async function withoutPath<T>(f: () => Promise<T>): Promise<T> {
  const empty = await Deno.makeTempDir({ prefix: "scmoe-nopath-" });
  const path = Deno.env.get("PATH");
  Deno.env.set("PATH", empty);
  try {
    return await f();
  } finally {
    if (path === undefined) Deno.env.delete("PATH");
    else Deno.env.set("PATH", path);
    await Deno.remove(empty);
  }
}

Deno.test("expected errors: startNatsServer without nats-server on PATH", async () => {
  const e = await withoutPath(() => rejectsWith(() => startNatsServer(), NatsServerNotFoundError));
  oneLine(e, NOT_FOUND);
});

Deno.test('expected errors: init({ cluster: "nats" }) without nats-server on PATH', async () => {
  const e = await withoutPath(() =>
    rejectsWith(() => init({ cluster: "nats" }), NatsServerNotFoundError)
  );
  oneLine(e, NOT_FOUND);
  equal(isInitialized(), false);
});

Deno.test("expected errors: startNatsServer with a binary path that does not exist", async () => {
  const e = await rejectsWith(
    () => startNatsServer({ binary: "/nonexistent/nats-server" }),
    NatsServerNotFoundError,
  );
  oneLine(e, /^\/nonexistent\/nats-server not found: install it \(apt-get install nats-server\)/);
});

// ---- NATS unreachable ----

const REFUSED = /^cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+: connection refused$/;

Deno.test("expected errors: init with a nats:// URL nobody listens on fails at once", async () => {
  const url = `nats://127.0.0.1:${freePort()}`;
  const { e, ms } = await timedRejection(() => init({ cluster: url }));
  isA(e, NatsConnectError);
  oneLine(e, REFUSED);
  match(e.message, new RegExp(url.replaceAll(".", "\\.")));
  ok(ms < 5_000, `took ${ms} ms`);
  equal(isInitialized(), false);
});

Deno.test("expected errors: an agent given an unreachable URL fails at once", async () => {
  const { e, ms } = await timedRejection(() =>
    Agent.start({ servers: [`nats://127.0.0.1:${freePort()}`] })
  );
  isA(e, NatsConnectError);
  oneLine(e, REFUSED);
  ok(ms < 5_000, `took ${ms} ms`);
});

Deno.test("expected errors: a port that accepts and says nothing times out in one line", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of l) held.push(c);
  })();
  try {
    const url = `nats://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
    const { e, ms } = await timedRejection(() => connectNats({ servers: [url] }, "probe", 300));
    isA(e, NatsConnectError);
    oneLine(e, /^cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+: no answer within 0\.3 s$/);
    ok(ms < 5_000, `took ${ms} ms`);
  } finally {
    l.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
  }
});

Deno.test("expected errors: a port that hangs up before the handshake, one line", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const c of l) c.close();
  })();
  try {
    const url = `nats://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
    const { e } = await timedRejection(() => connectNats({ servers: [url] }, "probe", 2_000));
    isA(e, NatsConnectError);
    oneLine(e, /^cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+: /);
  } finally {
    l.close();
    await accepting.catch(() => {});
  }
});

// ---- backends ----

for (const name of ["tensorflow", "tensorflow-gpu"] as const) {
  Deno.test(`expected errors: ${name} without its package`, async () => {
    const pkg = name === "tensorflow" ? "@tensorflow/tfjs-node" : "@tensorflow/tfjs-node-gpu";
    const e = await rejectsWith(() => setupBackend(name), BackendUnavailableError);
    oneLine(e, new RegExp(`^${name}: ${pkg} is not installed; add it with .deno add npm:${pkg}`));
    match(e.message, /or use --backend wasm \(the default\)$/);
  });
}

/** Runs `f` with `navigator.gpu.requestAdapter` answering `adapter`. */
async function withAdapter<T>(adapter: unknown, f: () => Promise<T>): Promise<T> {
  const gpu = navigator.gpu;
  Object.defineProperty(gpu, "requestAdapter", {
    value: () => Promise.resolve(adapter),
    configurable: true,
    writable: true,
  });
  try {
    return await f();
  } finally {
    delete (gpu as { requestAdapter?: unknown }).requestAdapter;
  }
}

Deno.test({
  name: "expected errors: webgpu without any adapter",
  ignore: !("gpu" in navigator),
  async fn() {
    const e = await withAdapter(
      null,
      () => rejectsWith(() => setupBackend("webgpu"), BackendUnavailableError),
    );
    oneLine(e, /^webgpu: no GPU adapter found; use --backend wasm \(the default\)$/);
  },
});

Deno.test({
  name: "expected errors: webgpu on a software adapter is refused (models_backend opts in)",
  ignore: !("gpu" in navigator),
  async fn() {
    const llvmpipe = { info: { description: "llvmpipe (LLVM 15.0.6, 256 bits)", vendor: "65541" } };
    const flagged = { info: { description: "", vendor: "", isFallbackAdapter: true } };
    for (const adapter of [llvmpipe, flagged]) {
      const e = await withAdapter(
        adapter,
        () => rejectsWith(() => setupBackend("webgpu"), BackendUnavailableError),
      );
      oneLine(
        e,
        /^webgpu: only a software adapter \(.+\) is available, far slower than wasm; pass allowSoftwareAdapter \/ --allow-software-webgpu to use it anyway, or use --backend wasm \(the default\)$/,
      );
    }
  },
});

const real = "gpu" in navigator ? await navigator.gpu.requestAdapter().catch(() => null) : null;

Deno.test({
  name: "expected errors: this machine's software webgpu adapter is refused by default",
  ignore: real === null || real.info.isFallbackAdapter !== true,
  async fn() {
    const e = await rejectsWith(() => setupBackend("webgpu"), BackendUnavailableError);
    oneLine(
      e,
      new RegExp(
        `software adapter \\(${real!.info.description.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`,
      ),
    );
  },
});

// ---- checkpoints ----

/** A small checkpoint saved under a fresh directory; returns its path. */
async function smallCheckpoint(): Promise<{ dir: string; path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "scmoe-ckpt-err-" });
  const t = (n: number) => ({ shape: [n], data: new Float32Array(n).map((_, i) => i / n) });
  const path = await saveCheckpoint(dir, {
    params: new Map([["wte", t(64)], ["lnf.g", t(8)]]),
    optimizer: { step: 3, tensors: new Map([["wte.m", t(64)]]) },
    config: { variant: "scmoe" },
    state: { step: 3, seed: 1, ranks: 1 },
  });
  return { dir, path };
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Replaces a checkpoint file and makes the manifest agree, so only parsing can catch it. */
async function replaceVerified(path: string, file: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(`${path}/${file}`, bytes);
  const manifest = JSON.parse(await Deno.readTextFile(`${path}/manifest.json`));
  manifest.files[file] = { bytes: bytes.length, sha256: await sha256(bytes) };
  await Deno.writeTextFile(`${path}/manifest.json`, JSON.stringify(manifest));
}

Deno.test("expected errors: a truncated checkpoint file, one line", async () => {
  const { dir, path } = await smallCheckpoint();
  try {
    const full = await Deno.readFile(`${path}/model.safetensors`);
    await Deno.writeFile(`${path}/model.safetensors`, full.subarray(0, full.length - 100));
    const e = await rejectsWith(() => loadCheckpoint(path), CheckpointError);
    oneLine(e, /model\.safetensors: \d+ bytes, manifest says \d+ \(truncated or overwritten\)$/);
    // Truncated with a manifest that agrees: the parser catches it.
    await replaceVerified(path, "model.safetensors", full.subarray(0, full.length - 100));
    oneLine(
      await rejectsWith(() => loadCheckpoint(path), CheckpointError),
      /model\.safetensors: tensor \S+: data_offsets \[\d+,\d+\] outside \d+ data bytes$/,
    );
    await replaceVerified(path, "model.safetensors", full.subarray(0, 5));
    oneLine(
      await rejectsWith(() => loadCheckpoint(path), CheckpointError),
      /model\.safetensors: 5 bytes is too short for a safetensors file$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("expected errors: a checkpoint with a garbage header, one line", async () => {
  const { dir, path } = await smallCheckpoint();
  try {
    const garbage = new TextEncoder().encode("this is not a safetensors file\nat all\n");
    await replaceVerified(path, "model.safetensors", garbage);
    oneLine(
      await rejectsWith(() => loadCheckpoint(path), CheckpointError),
      /model\.safetensors: not a safetensors file \(header length \d+ exceeds file size \d+\)$/,
    );
    // A plausible length over a header that is not JSON.
    const bad = new Uint8Array(8 + 16);
    new DataView(bad.buffer).setBigUint64(0, 16n, true);
    bad.set(new TextEncoder().encode('{\n"x": [1,2\n}  '), 8);
    await replaceVerified(path, "model.safetensors", bad);
    oneLine(
      await rejectsWith(() => loadCheckpoint(path), CheckpointError),
      /model\.safetensors: not a safetensors file \(header is not valid JSON\)$/,
    );
    await Deno.writeTextFile(`${path}/manifest.json`, "{ not json\n\n");
    oneLine(
      await rejectsWith(() => loadCheckpoint(path), CheckpointError),
      /manifest\.json: not a JSON object$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("expected errors: CheckpointError folds line breaks of what it names", () => {
  const e = (() => {
    try {
      decodeSafetensors(new Uint8Array(3), "a\nfile");
    } catch (e) {
      return e as Error;
    }
    throw new Error("did not throw");
  })();
  isA(e, CheckpointError);
  oneLine(e, /^a file: 3 bytes is too short for a safetensors file$/);
});
