/**
 * The call timeline stays bounded: each node (driver, actor host) keeps a
 * ring of its most recent `timelineCapacity` calls.
 */
import assert from "node:assert/strict";
import { get, init, remote, shutdown, timeline } from "../actors/mod.ts";
import { type CallRecord, Timeline } from "../actors/timeline.ts";
import type { Caller, Recorder } from "./fixtures/actors.ts";

const FIXTURES = new URL("./fixtures/actors.ts", import.meta.url);
const RecorderActor = remote<typeof Recorder>(FIXTURES, "Recorder");
const CallerActor = remote<typeof Caller>(FIXTURES, "Caller");

function record(callId: string): CallRecord {
  return {
    callId,
    caller: "driver",
    actor: "a0",
    method: "m",
    submitMs: 1,
    startMs: 2,
    endMs: 3,
    bytes: 0,
    ok: true,
  };
}

Deno.test("Timeline keeps the last `capacity` records, oldest first", () => {
  const t = new Timeline(3);
  for (let i = 0; i < 7; i++) t.add(record(`c${i}`));
  assert.deepEqual(t.records.map((r) => r.callId), ["c4", "c5", "c6"]);
  assert.equal(t.dropped, 4);
  t.capacity = 2;
  assert.deepEqual(t.records.map((r) => r.callId), ["c5", "c6"]);
  assert.equal(t.dropped, 5);
  t.add(record("c7"));
  assert.deepEqual(t.records.map((r) => r.callId), ["c6", "c7"]);
  t.capacity = 4;
  t.merge([record("c8"), record("c9")]);
  assert.deepEqual(t.records.map((r) => r.callId), ["c6", "c7", "c8", "c9"]);
  assert.equal(t.toChromeTrace().traceEvents.filter((e) => e.ph === "X").length, 4);

  const off = new Timeline(0);
  off.add(record("x"));
  assert.deepEqual(off.records, []);
  assert.equal(off.dropped, 1);
  assert.throws(() => new Timeline(-1), RangeError);
  assert.throws(() => (t.capacity = 1.5), RangeError);
});

Deno.test("init({ timelineCapacity }) bounds the driver's and the actors' timelines", async () => {
  await assert.rejects(init({ timelineCapacity: -1 }), RangeError);
  await init({ timelineCapacity: 10 });
  try {
    const rec = await RecorderActor.options({ name: "rec" }).remote();
    const caller = await CallerActor.remote();
    await get(Array.from({ length: 40 }, (_, i) => rec.append(`driver:${i}`)));
    await caller.drive("rec", "c", 40);
    const appends = (await timeline()).traceEvents.filter((e) =>
      e.ph === "X" && e.name === "append"
    );
    const by = (caller: string) =>
      appends.filter((e) => (e.args as { caller: string }).caller === caller);
    // The driver's ring holds its last 10 calls (the last being `drive`); the
    // calling actor's holds its last 10 appends.
    const kept = by("driver").map((e) => (e.args as { callId: string }).callId);
    assert.deepEqual(kept, Array.from({ length: 9 }, (_, i) => `driver:${31 + i}`));
    assert.equal(by(caller.actorId).length, 10);
  } finally {
    await shutdown();
  }
});
