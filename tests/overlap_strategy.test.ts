/**
 * The adaptive slot strategy against a brute-force two-stream simulation,
 * for communication shorter than, equal to and longer than the window.
 */
import assert from "node:assert/strict";
import {
  blockTime,
  boundTime,
  chooseChunks,
  chooseSlot,
  pipelineTime,
  SlotPlanner,
  type WindowTimes,
} from "../models/scheduler.ts";

/** Simulates the compute stream and the communication stream tick by tick (0.01 ms). */
function simulate(t: WindowTimes, slot: number): number {
  const dt = 0.01;
  const ops = [
    ...t.backbone.slice(0, slot).map((d) => ({ d, expert: false })),
    { d: t.expertMs, expert: true },
    ...t
      .backbone.slice(slot).map((d) => ({ d, expert: false })),
  ];
  let now = 0, op = 0, left = ops[0].d, dispatchLeft = t.dispatchMs, combineLeft = -1;
  while (op < ops.length || combineLeft > 1e-9) {
    if (dispatchLeft > 1e-9) dispatchLeft -= dt;
    else if (combineLeft > 1e-9) combineLeft -= dt;
    if (op < ops.length) {
      const blocked = ops[op].expert && dispatchLeft > 1e-9;
      if (!blocked) {
        left -= dt;
        if (left <= 1e-9) {
          if (ops[op].expert) combineLeft = t.combineMs;
          op++;
          left = op < ops.length ? ops[op].d : 0;
        }
      }
    }
    now += dt;
  }
  return now;
}

const TABLE: { name: string; t: WindowTimes; slot: number; ms: number }[] = [
  {
    name: "communication shorter than the window: hidden entirely",
    t: { backbone: [2, 3, 4], dispatchMs: 3, expertMs: 1, combineMs: 3 },
    slot: 2,
    ms: 10,
  },
  {
    name: "communication equal to the window",
    t: { backbone: [3, 3], dispatchMs: 3, expertMs: 1, combineMs: 3 },
    slot: 1,
    ms: 7,
  },
  {
    name: "communication longer than the window: every slot exposes it",
    t: { backbone: [1, 1], dispatchMs: 5, expertMs: 1, combineMs: 5 },
    slot: 0,
    ms: 11,
  },
  {
    name: "a long dispatch pushes the expert late",
    t: { backbone: [1, 1, 1, 5], dispatchMs: 3.5, expertMs: 2, combineMs: 1 },
    slot: 3,
    ms: 3.5 + 2 + 5,
  },
  {
    name: "a long combine pulls the expert to the front",
    t: { backbone: [5, 1, 1, 1], dispatchMs: 0.5, expertMs: 2, combineMs: 6 },
    slot: 0,
    ms: 0.5 + 2 + 8,
  },
];

for (const row of TABLE) {
  Deno.test(`chooseSlot: ${row.name}`, () => {
    const c = chooseSlot(row.t);
    assert.equal(c.slot, row.slot);
    assert.ok(Math.abs(c.modelledMs - row.ms) < 1e-9, `${c.modelledMs} vs ${row.ms}`);
    for (let k = 0; k <= row.t.backbone.length; k++) {
      const sim = simulate(row.t, k);
      assert.ok(
        Math.abs(blockTime(row.t, k) - sim) < 0.05,
        `slot ${k}: model ${blockTime(row.t, k)} sim ${sim}`,
      );
      assert.ok(c.modelledMs <= blockTime(row.t, k) + 1e-9);
      assert.ok(blockTime(row.t, k) >= boundTime(row.t) - 1e-9, "no slot beats the bound");
    }
    assert.match(c.reason, /slot \d+\/\d+ models/);
  });
}

Deno.test("chooseSlot rejects negative or missing op times", () => {
  assert.throws(
    () => chooseSlot({ backbone: [1, -1], dispatchMs: 1, expertMs: 1, combineMs: 1 }),
    RangeError,
  );
  assert.throws(
    () => chooseSlot({ backbone: [1], dispatchMs: NaN, expertMs: 1, combineMs: 1 }),
    /non-negative/,
  );
});

Deno.test("chooseChunks pipelines long communication and stops when chunks cost more", () => {
  const long: WindowTimes = { backbone: [1], dispatchMs: 8, expertMs: 2, combineMs: 8 };
  assert.equal(chooseChunks(long, 0.1), 8);
  assert.equal(chooseChunks(long, 0.5), 2);
  assert.equal(
    chooseChunks({ backbone: [1], dispatchMs: 0.1, expertMs: 5, combineMs: 0.1 }, 0.2),
    1,
  );
  assert.ok(Math.abs(pipelineTime(long, 1, 0) - 18) < 1e-9, "one chunk is the serial time");
});

Deno.test("SlotPlanner decides after warm-up, holds while stable, re-decides on drift", () => {
  const p = new SlotPlanner(3, { warmupSteps: 3, history: 3, driftFraction: 0.2 });
  const early: WindowTimes = { backbone: [2, 3, 4], dispatchMs: 3, expertMs: 1, combineMs: 3 };
  assert.equal(p.observe(early), null);
  assert.equal(p.observe(early), null);
  const first = p.observe(early);
  assert.equal(first?.slot, 2);
  assert.equal(p.observe({ ...early, dispatchMs: 3.1 }), null, "small changes keep the choice");
  const late: WindowTimes = { backbone: [2, 3, 4], dispatchMs: 0.5, expertMs: 1, combineMs: 8 };
  p.observe(late);
  const again = p.observe(late);
  assert.equal(again?.slot, 0, "a long combine moves the expert to the front");
  assert.throws(() => p.observe({ ...late, backbone: [1] }), /expected 3 backbone ops/);
});
