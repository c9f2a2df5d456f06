/** Overlap figures of training steps: pooled over ranks by hand, per block, and summarized. */
import assert from "node:assert/strict";
import { overlapFields, overlapSummary, type StepOverlap } from "../models/overlap_metrics.ts";

/** Figures of one block: compute, comm, exposed; the span is compute + exposed, the bound max. */
function block(block: number, computeMs: number, commMs: number, exposedMs: number) {
  return {
    block,
    computeMs,
    commMs,
    exposedMs,
    handoffMs: 0,
    skewMs: 0,
    overheadMs: 0,
    exposedOverBoundMs: exposedMs - (Math.max(computeMs, commMs) - computeMs),
    spanMs: computeMs + exposedMs,
    windowMs: computeMs / 2,
    boundMs: Math.max(computeMs, commMs),
  };
}

function rank(...blocks: ReturnType<typeof block>[]): StepOverlap {
  const sum = (k: keyof ReturnType<typeof block>) => blocks.reduce((s, b) => s + b[k], 0);
  const total = {
    computeMs: sum("computeMs"),
    commMs: sum("commMs"),
    exposedMs: sum("exposedMs"),
    handoffMs: 0,
    skewMs: 0,
    overheadMs: 0,
    exposedOverBoundMs: sum("exposedOverBoundMs"),
    spanMs: sum("spanMs"),
    windowMs: sum("windowMs"),
    boundMs: sum("boundMs"),
  };
  return { total, blocks };
}

Deno.test("overlap fields: pooled over ranks, per block, times as per-rank means", () => {
  const f = overlapFields([
    rank(block(1, 10, 4, 1), block(3, 20, 8, 0)),
    rank(block(1, 12, 6, 3), block(3, 18, 8, 4)),
  ]) as Record<string, number> & { moe_blocks: Record<string, number>[] };
  // Comm 26 ms in all, 8 ms exposed: hidden 1 - 8/26.
  assert.equal(f.comm_ms, 13);
  assert.equal(f.exposed_ms, 4);
  assert.equal(f.compute_ms, 30);
  assert.ok(Math.abs(f.hidden_fraction - (1 - 8 / 26)) < 1e-12);
  // eta = (T_ser - T_meas) / (T_ser - T_bound): ser 60 + 26 = 86, meas 60 + 8 = 68, bound 60.
  assert.ok(Math.abs(f.eta - (86 - 68) / (86 - 60)) < 1e-12);
  assert.deepEqual(f.moe_blocks.map((b) => b.block), [1, 3]);
  // Block 1: comm 10, exposed 4 -> hidden 0.6; block 3: comm 16, exposed 4 -> 0.75.
  assert.ok(Math.abs(f.moe_blocks[0].hidden_fraction - 0.6) < 1e-12);
  assert.ok(Math.abs(f.moe_blocks[1].hidden_fraction - 0.75) < 1e-12);
  assert.equal(f.moe_blocks[1].comm_ms, 8);
});

Deno.test("overlap fields: none without MoE communication; summary leaves out the first step", () => {
  assert.deepEqual(overlapFields([undefined, undefined]), {});
  assert.deepEqual(overlapFields([rank(block(1, 10, 0, 0))]), {});
  const steps = [0.1, 0.9, 0.7, 0.8].map((h) => ({
    hidden_fraction: h,
    eta: h / 2,
    handoff_ms: h * 10,
  }));
  assert.deepEqual(overlapSummary([...steps, { loss: 1 }]), {
    hiddenFraction: 0.8,
    eta: 0.4,
    handoffMs: 8,
  });
  assert.equal(overlapSummary([{ loss: 1 }]), null);
});
