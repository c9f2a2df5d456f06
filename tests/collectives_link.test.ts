/**
 * The link model's receiving side: frames held until their stamp, in order,
 * and the thread yields to what a delivery resolved before it sleeps for the
 * next frame.
 */
import { deepEqual, ok } from "node:assert/strict";
import { Inbound, nowMs } from "../collectives/link.ts";
import type { Elem } from "../collectives/types.ts";

/** Pushes frames stamped `offsetsMs` from now; records when each was delivered and when its consumer ran. */
async function deliverAll(offsetsMs: number[]) {
  const delivered: { id: number; atMs: number; readyAt: number }[] = [];
  const consumed: { id: number; atMs: number }[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const inbound = new Inbound((_src, _tag, data: Elem) => {
    const id = data[0];
    delivered.push({ id, atMs: nowMs(), readyAt: readyAts[id] });
    // A consumer behind a few promise hops, as a collective's `await recv` is.
    Promise.resolve().then(() => Promise.resolve()).then(() => {
      consumed.push({ id, atMs: nowMs() });
      if (consumed.length === offsetsMs.length) done();
    });
  });
  const t0 = nowMs();
  const readyAts = offsetsMs.map((o) => t0 + o);
  readyAts.forEach((at, id) => inbound.push(1, "t", Int32Array.of(id), at));
  await all;
  inbound.close();
  return { delivered, consumed };
}

Deno.test("link: held frames are delivered in order, none before its stamp", async () => {
  const { delivered } = await deliverAll([0, 0.4, 0.8, 3, 3.2, 6]);
  deepEqual(delivered.map((d) => d.id), [0, 1, 2, 3, 4, 5]);
  for (const d of delivered) ok(d.atMs >= d.readyAt, `frame ${d.id} delivered early`);
});

Deno.test("link: a delivered frame's consumer runs before the thread sleeps for the next one", async () => {
  // Frame 1 is due 1.4 ms after frame 0, within the timer slack: the thread sleeps for it. A
  // trial counts when frame 0 was delivered before frame 1 was due (its timer was not late).
  for (let trial = 0; trial < 10; trial++) {
    const { consumed, delivered } = await deliverAll([2, 3.4]);
    const [d0, d1] = delivered;
    if (d0.atMs >= d1.readyAt) continue;
    const c0 = consumed.find((c) => c.id === 0)!;
    ok(
      c0.atMs < d1.atMs,
      `frame 0 was consumed ${(c0.atMs - d1.atMs).toFixed(2)} ms after frame 1 was delivered`,
    );
    return;
  }
  throw new Error("no trial delivered frame 0 before frame 1 was due");
});
