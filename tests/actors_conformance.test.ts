/**
 * One conformance suite of the actor runtime, run against the `local`
 * (Workers) and `nats` (processes behind a private nats-server) clusters.
 */
import assert from "node:assert/strict";
import { processAlive } from "./helpers/process.ts";
import {
  ActorDiedError,
  ActorNotFoundError,
  get,
  getActor,
  GetTimeoutError,
  init,
  kill,
  ModuleNotAllowedError,
  remote,
  RemoteError,
  shutdown,
  timeline,
  wait,
} from "../actors/mod.ts";
import type { Broken, Caller, Counter, Probe, Recorder } from "./fixtures/actors.ts";

const FIXTURES = new URL("./fixtures/actors.ts", import.meta.url);
const RecorderActor = remote<typeof Recorder>(FIXTURES, "Recorder");
const CounterActor = remote<typeof Counter>(FIXTURES, "Counter");
const ProbeActor = remote<typeof Probe>(FIXTURES, "Probe");
const CallerActor = remote<typeof Caller>(FIXTURES, "Caller");
const BrokenActor = remote<typeof Broken>(FIXTURES, "Broken");

// The default: a shorter one declares a CPU-starved actor dead on a busy machine (seen at 1.5 s).
const HEARTBEAT_TIMEOUT_MS = 3000;

for (const cluster of ["local", "nats"] as const) {
  Deno.test(`actors conformance (${cluster})`, async (t) => {
    await init({ cluster, heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, heartbeatIntervalMs: 200 });
    const pids: number[] = [];
    try {
      await t.step("calls return futures; refs as arguments are resolved first", async () => {
        const a = await CounterActor.remote(10);
        const b = await CounterActor.remote(0);
        const r1 = a.add(5); // 15
        const r2 = b.add(r1); // 15, waits for r1
        const r3 = a.add(r2); // 30
        assert.deepEqual(await get([r1, r2, r3]), [15, 15, 30]);
        assert.equal(await b.get(), 15);
      });

      await t.step("calls from concurrent callers keep each caller's order", async () => {
        const rec = await RecorderActor.options({ name: "rec" }).remote();
        const callers = await Promise.all([CallerActor.remote(), CallerActor.remote()]);
        const driverRefs = Array.from({ length: 50 }, (_, i) => rec.append(`driver:${i}`));
        const [n1, n2] = await get([
          callers[0].drive("rec", "c0", 50),
          callers[1].drive("rec", "c1", 50),
        ]);
        await get(driverRefs);
        const log = await rec.entries();
        assert.equal(log.length, 150);
        assert.ok(n1 <= 150 && n2 <= 150);
        for (const tag of ["driver", "c0", "c1"]) {
          const seq = log.filter((e) => e.startsWith(`${tag}:`)).map((e) =>
            Number(e.split(":")[1])
          );
          assert.deepEqual(seq, Array.from({ length: 50 }, (_, i) => i), `order of ${tag}`);
        }
      });

      await t.step("wait splits ready and pending; numReturns and timeouts hold", async () => {
        const p = await ProbeActor.options({ maxConcurrency: 4 }).remote();
        const refs = [p.sleep(600), p.sleep(10), p.sleep(20), p.sleep(900)];
        const t0 = performance.now();
        const first = await wait(refs, { numReturns: 2 });
        assert.deepEqual(first.ready, [refs[1], refs[2]]);
        assert.deepEqual(first.pending, [refs[0], refs[3]]);
        const timed = await wait(refs, { numReturns: 4, timeoutMs: 100 });
        assert.equal(timed.ready.length, 2, "the timeout returns what is ready");
        assert.ok(performance.now() - t0 < 550, "maxConcurrency 4 ran the sleeps concurrently");
        await assert.rejects(get(refs[3], { timeoutMs: 50 }), GetTimeoutError);
        const all = await wait(refs, { numReturns: 4 });
        assert.equal(all.pending.length, 0);
        await assert.rejects(wait(refs, { numReturns: 5 }), RangeError);
      });

      await t.step("maxConcurrency 1 runs async calls one after another", async () => {
        const p = await ProbeActor.remote();
        const t0 = performance.now();
        await get([p.sleep(150), p.sleep(150)]);
        assert.ok(performance.now() - t0 >= 290, "two 150 ms calls took at least 300 ms");
      });

      await t.step("remote errors carry name, message and stack", async () => {
        const p = await ProbeActor.remote();
        const err = await p.fail("bad input 42").then(() => null, (e) => e);
        assert.ok(err instanceof RemoteError);
        assert.equal(err.remoteName, "TypeError");
        assert.equal(err.message, "TypeError: bad input 42");
        assert.match(err.remoteStack, /fail/);
        // @ts-expect-error: calling a method the class lacks
        assert.equal(typeof p.nope, "undefined");
        const ctorErr = await BrokenActor.remote().then(() => null, (e) => e);
        assert.ok(ctorErr instanceof RemoteError);
        assert.equal(ctorErr.message, "RangeError: constructor refused");
      });

      await t.step("typed arrays of 8 MiB round-trip with their type", async () => {
        const p = await ProbeActor.remote();
        const f = new Float32Array(2 << 20).map((_, i) => Math.sin(i));
        const n = new Int32Array(2 << 20).map((_, i) => i * 7 - 3);
        const [fb, nb] = await get([p.echo(f), p.echo(n)]);
        assert.ok(fb instanceof Float32Array && nb instanceof Int32Array);
        assert.deepEqual(fb, f);
        assert.deepEqual(nb, n);
        assert.deepEqual(await p.types([f.subarray(0, 3), n.subarray(0, 2), new Uint8Array(2)]), [
          "Float32Array",
          "Int32Array",
          "Uint8Array",
        ]);
      });

      await t.step("named actors resolve from the driver and from actors", async () => {
        const c = await CounterActor.options({ name: "shared-counter" }).remote(100);
        const again = await getActor<Counter>("shared-counter");
        assert.equal(again.actorId, c.actorId);
        assert.equal(await again.add(1), 101);
        await assert.rejects(getActor("no-such-actor"), ActorNotFoundError);
        await assert.rejects(
          CounterActor.options({ name: "shared-counter" }).remote(),
          /already exists/,
        );
      });

      await t.step("modules outside the module roots are refused by the driver", async () => {
        const Foreign = remote("https://example.com/x.ts", "X");
        const err = await Foreign.remote().then(() => null, (e) => e);
        assert.ok(err instanceof ModuleNotAllowedError, `got ${err}`);
        assert.match(err.message, /^actor module https:\/\/example\.com\/x\.ts is outside/);
        assert.match(err.message, /init\(\{ moduleRoots \}\)$/);
      });

      await t.step("a crashed actor fails its calls with ActorDiedError and restarts", async () => {
        const p = await ProbeActor.options({ maxRestarts: 1, maxConcurrency: 2 }).remote();
        const before = await p.whoami();
        pids.push(before.pid);
        const pending = p.sleep(5000);
        const t0 = performance.now();
        if (cluster === "nats") Deno.kill(before.pid, "SIGKILL");
        else await p.crash();
        const err = await pending.then(() => null, (e) => e);
        assert.ok(err instanceof ActorDiedError, `got ${err}`);
        assert.ok(
          performance.now() - t0 < HEARTBEAT_TIMEOUT_MS + 1000,
          "detected within the heartbeat timeout",
        );
        const after = await p.whoami();
        assert.equal(after.incarnation, 1);
        if (cluster === "nats") {
          pids.push(after.pid);
          assert.notEqual(after.pid, before.pid);
        }
        assert.equal(await p.echo("still works"), "still works");
      });

      await t.step("maxTaskRetries re-runs unfinished calls after a restart", async () => {
        const p = await ProbeActor.options({ maxRestarts: 1, maxTaskRetries: 1, maxConcurrency: 2 })
          .remote();
        const { pid } = await p.whoami();
        const pending = p.sleep(300);
        if (cluster === "nats") Deno.kill(pid, "SIGKILL");
        else await p.crash();
        assert.equal(await pending, 300);
        assert.equal((await p.whoami()).incarnation, 1);
      });

      if (cluster === "nats") {
        await t.step("a hung process is detected by the heartbeat timeout", async () => {
          const p = await ProbeActor.remote();
          const { pid } = await p.whoami();
          const pending = p.echo("never");
          Deno.kill(pid, "SIGSTOP");
          const t0 = performance.now();
          const err = await pending.then(() => null, (e) => e);
          const took = performance.now() - t0;
          assert.ok(err instanceof ActorDiedError, `got ${err}`);
          assert.match(err.message, /no heartbeat/);
          assert.ok(
            took >= HEARTBEAT_TIMEOUT_MS - 300 && took < HEARTBEAT_TIMEOUT_MS + 1500,
            `took ${took}`,
          );
        });
      }

      await t.step("kill() ends the actor without restart", async () => {
        const p = await ProbeActor.options({ maxRestarts: 3 }).remote();
        const pending = p.sleep(5000);
        await kill(p);
        await assert.rejects(pending, ActorDiedError);
        await assert.rejects(p.echo(1), ActorDiedError);
      });

      await t.step("the timeline records every call as Chrome trace events", async () => {
        const path = await Deno.makeTempFile({ suffix: ".json" });
        const trace = await timeline(path);
        const calls = trace.traceEvents.filter((e) => e.ph === "X");
        const appends = calls.filter((e) => e.name === "append");
        assert.ok(appends.length >= 150, `${appends.length} append calls recorded`);
        const callers = new Set(appends.map((e) => (e.args as { caller: string }).caller));
        assert.ok(callers.has("driver"));
        assert.ok(
          callers.size >= 3,
          `calls issued inside actors are recorded too: ${[...callers]}`,
        );
        for (const e of appends) assert.ok((e.dur as number) >= 0 && (e.ts as number) > 0);
        const onDisk = JSON.parse(await Deno.readTextFile(path));
        assert.equal(onDisk.traceEvents.length, trace.traceEvents.length);
        await Deno.remove(path);
      });

      const p = await ProbeActor.remote();
      pids.push((await p.whoami()).pid);
    } finally {
      await shutdown();
    }
    if (cluster === "nats") {
      for (const pid of pids) {
        assert.ok(!processAlive(pid), `actor process ${pid} is gone after shutdown`);
      }
    }
    await assert.rejects(ProbeActor.remote(), /not running/);
  });
}
