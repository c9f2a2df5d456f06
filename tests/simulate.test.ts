/**
 * The simulator against hand computations and the properties it must have:
 * a hand-built two-step program's step time, an exchange's time on a
 * two-level topology, a schedule without a window hides nothing, ScMoE
 * hides what fits its window and its speed-up grows with the communication
 * share while it does, the scheduler's own plan is what gets replayed.
 */
import assert from "node:assert/strict";
import { computeStep, type Network } from "../models/steps.ts";
import { moeLayer } from "../models/moe_layer.ts";
import { HARDWARE, type Hardware } from "../models/hardware.ts";
import { allreduceS, alltoallS } from "../models/hardware.ts";
import { simulateNetwork, simulateVariants } from "../models/simulate.ts";
import { explainOverlap, OverlapScheduler } from "../models/scheduler.ts";
import { gpt } from "../models/gpt.ts";
import { resolveConfig } from "../models/config.ts";

/** A device that computes 1 GFLOP/s and nothing else costs; links of the given rate. */
function toyHardware(linkBytesPerS = 1e6, latencyS = 0): Hardware {
  const link = { bytesPerS: linkBytesPerS, latencyS };
  return {
    name: "toy",
    summary: "toy",
    device: {
      matmulFlopsPerS: 1e9,
      batchedFlopsPerS: 1e9,
      memoryBytesPerS: Infinity,
      copyBytesPerS: Infinity,
      tanhPerS: Infinity,
      kernelS: 0,
      fusion: 1,
      hostBytesPerS: Infinity,
      hostReadS: 0,
      exchangeViaHost: false,
      backwardFactor: 2,
      bytesPerElement: 4,
    },
    topology: { ranksPerNode: 8, intra: link, inter: link, perPeerS: 0 },
    sources: [],
  };
}

const SETUP = { ep: 2, batch: 1, seq: 1 };

Deno.test("a hand-built two-step program: step time is the hand computation", () => {
  const flops = (f: number) => () => ({ flops: f, bytes: 0, kernels: 0 });
  const net: Network = {
    params: [],
    program: () => [
      computeStep({
        name: "a",
        inputs: {},
        outputs: { x: "x" },
        run: () => ({ x: null! }),
        cost: flops(2e9),
      }),
      computeStep({
        name: "b",
        inputs: { x: "x" },
        outputs: { y: "logits" },
        run: () => ({ y: null! }),
        cost: flops(1e9),
      }),
    ],
  };
  const hardware = toyHardware();
  const infer = simulateNetwork(net, { hardware, ...SETUP }, {}, { training: false });
  assert.equal(infer.stepMs, 3000); // 2 s + 1 s at 1 GFLOP/s
  assert.equal(infer.computeMs, 3000);
  assert.equal(infer.commMs, 0);
  assert.equal(infer.hiddenFraction, 0);
  // Four ranks on two cores: each computes with half a device.
  const shared = simulateNetwork(net, { hardware, ...SETUP, computeShare: 0.5 }, {}, {
    training: false,
  });
  assert.equal(shared.stepMs, 6000);
  const train = simulateNetwork(net, { hardware, ...SETUP }, {}, { training: true });
  // The backward of "b" waits for the loss gradient, which no step makes: only the forward runs.
  assert.equal(train.stepMs, 3000);
  assert.deepEqual(train.uncosted, []);
  assert.equal(train.modelFlops, 3 * 3e9);
});

Deno.test("the forward and backward of a compute chain: backwardFactor times the forward", () => {
  const cost = (f: number) => () => ({ flops: f, bytes: 0, kernels: 0 });
  const net: Network = {
    params: [],
    program: () => [
      computeStep({
        name: "a",
        inputs: {},
        outputs: { x: "x" },
        run: () => ({ x: null! }),
        cost: cost(1e9),
      }),
      computeStep({
        name: "loss",
        inputs: { x: "x" },
        outputs: { l: "loss" },
        run: () => ({ l: null! }),
        cost: cost(1e9),
      }),
    ],
  };
  const pass = simulateNetwork(net, { hardware: toyHardware(), ...SETUP });
  assert.equal(pass.stepMs, 2000 + 2 * 2000); // forward 2 s, backward 2x
  assert.deepEqual(
    pass.ops.map((o) => `${o.phase} ${o.name} ${o.startMs}-${o.endMs}`),
    ["fwd a 0-1000", "fwd loss 1000-2000", "bwd loss 2000-4000", "bwd a 4000-6000"],
  );
});

Deno.test("alltoallS and allreduceS: hand computations on a two-level topology", () => {
  const t = {
    ranksPerNode: 4,
    intra: { bytesPerS: 100, latencyS: 1 },
    inter: { bytesPerS: 10, latencyS: 3 },
    perPeerS: 0.5,
  };
  assert.equal(alltoallS(t, 1, 1000), 0);
  assert.equal(alltoallS(t, 4, 400), 1 + 0.5 * 3 + 300 / 100); // 3 peers of 100 bytes inside
  // 8 ranks: 3 peers inside (150 bytes), 4 outside (200 bytes at 10/s).
  assert.equal(alltoallS(t, 8, 400), 3 + 0.5 * 7 + 20);
  assert.equal(allreduceS(t, 4, 100), 6 * 1 + 1.5 * 100 / 100);
  assert.equal(allreduceS(t, 2, 100, 4), 2 * 3 + 100 / 10); // replicas on two nodes
});

/** One MoE layer of a variant between two compute steps, every cost given by hand. */
function moeNet(variant: "top2" | "scmoe", windowFlops: number): Network {
  const layer = moeLayer({
    name: "moe",
    variant,
    input: "a",
    tap: variant === "scmoe" ? "t" : undefined,
    output: "h",
    dim: 4,
    hidden: 8,
    experts: 2,
  });
  const c = (f: number) => () => ({ flops: f, bytes: 0, kernels: 0 });
  const steps = layer.steps.map((s) => {
    if (s.kind === "dispatch" || s.kind === "combine") {
      return { ...s, cost: () => ({ bytes: 2e6 }) };
    }
    const flops = s.moe?.role === "experts" ? 1e8 : s.moe?.role === "shared" ? windowFlops : 0;
    return { ...s, cost: c(flops) };
  });
  return {
    params: [],
    program: () => [
      computeStep({
        name: "tap",
        inputs: {},
        outputs: { t: "t" },
        run: () => ({ t: null! }),
        cost: c(0),
      }),
      computeStep({
        name: "attn",
        inputs: { t: "t" },
        outputs: { a: "a" },
        run: () => ({ a: null! }),
        cost: c(windowFlops),
      }),
      ...steps,
      computeStep({
        name: "head",
        inputs: { h: "h" },
        outputs: { l: "logits" },
        run: () => ({ l: null! }),
        cost: c(0),
      }),
    ],
  };
}

Deno.test("a program with no window (top-2, not pipelined) hides nothing, overlap on or off", () => {
  const hardware = toyHardware(1e9);
  for (const overlap of [true, false]) {
    const pass = simulateNetwork(moeNet("top2", 1e8), { hardware, ...SETUP }, {
      overlap,
      chunks: 1,
    }, {
      training: false,
    });
    assert.equal(pass.hiddenFraction, 0, `overlap ${overlap}`);
    // Two exchanges of 2 MB, half of each crossing a 1 GB/s link: 1 ms each, all exposed.
    assert.equal(pass.commMs, 2);
    assert.equal(pass.exposedMs, 2);
    assert.equal(pass.stepMs, 100 + 100 + 2); // attn, experts, the exchanges
  }
});

Deno.test("ScMoE hides communication that fits its window, and exposes only the excess", () => {
  // Window: attn (100 ms) and the shared expert (100 ms); experts 100 ms.
  const fits = simulateNetwork(moeNet("scmoe", 1e8), { hardware: toyHardware(1e9), ...SETUP }, {}, {
    training: false,
  });
  assert.equal(fits.hiddenFraction, 1);
  assert.equal(fits.stepMs, 300); // all compute
  // A slow link: each exchange 500 ms (1 MB at 2 MB/s) against 100 ms of window on each side.
  const slowSetup = { hardware: toyHardware(2e6), ...SETUP };
  const slow = simulateNetwork(moeNet("scmoe", 1e8), slowSetup, { chunks: 1 }, { training: false });
  // Every slot models 1100 ms (the earliest, 0, is kept): dispatch 0-500, experts 500-600,
  // combine 600-1100; attn and the shared expert (200 ms) hide 200 of the 1000 ms.
  assert.equal(slow.plan.slots["moe.gate"], 0);
  assert.equal(slow.stepMs, 1100);
  assert.equal(slow.commMs, 1000);
  assert.equal(slow.exposedMs, 800);
  assert.ok(Math.abs(slow.hiddenFraction - 0.2) < 1e-12);
  // Left to choose, the scheduler pipelines chunks (communication outlasts the window) and gains.
  const chunked = simulateNetwork(moeNet("scmoe", 1e8), slowSetup, {}, { training: false });
  assert.ok(chunked.plan.chunks["moe.gate"] > 1);
  assert.ok(chunked.stepMs < slow.stepMs, `${chunked.stepMs} vs ${slow.stepMs}`);
});

Deno.test("ScMoE's speed-up over top-2 grows with the communication share while it fits the window", () => {
  const model = { nLayer: 4, nEmbd: 256, nHead: 4, nExperts: 8, blockSize: 128 };
  const variants = [
    { name: "scmoe-pos2", model: { variant: "scmoe" as const, pos: 2 as const }, schedule: {} },
    { name: "top2", model: { variant: "top2" as const }, schedule: { overlap: false } },
  ];
  const base = HARDWARE["a30-pcie"];
  let last = 0;
  for (const scale of [8, 4, 2, 1]) {
    const hardware: Hardware = {
      ...base,
      topology: {
        ...base.topology,
        intra: { ...base.topology.intra, bytesPerS: base.topology.intra.bytesPerS * scale },
      },
    };
    const [pos2] = simulateVariants(model, { hardware, ep: 8, batch: 64, seq: 128 }, variants);
    assert.ok(
      pos2.train.hiddenFraction > 0.99,
      `scale ${scale}: hidden ${pos2.train.hiddenFraction}`,
    );
    assert.ok(pos2.trainSpeedup > last, `scale ${scale}: ${pos2.trainSpeedup} after ${last}`);
    last = pos2.trainSpeedup;
  }
});

Deno.test("the simulator replays the scheduler's own plan of the model's own program", () => {
  const net = gpt(resolveConfig({ variant: "scmoe", pos: 2, nLayer: 4, nExperts: 4 }));
  const pass = simulateNetwork(net, { hardware: HARDWARE["a30-pcie"], ep: 4, batch: 8, seq: 64 });
  const scheduler = new OverlapScheduler({ slot: pass.plan.slots["blocks.1.moe.gate"] });
  const plan = scheduler.plan(net.program(true));
  assert.deepEqual(pass.plan.steps.map((s) => s.name), plan.steps.map((s) => s.name));
  // Every step of the program has a cost estimate, and every step ran in both passes.
  assert.deepEqual(pass.uncosted, []);
  const ran = new Set(pass.ops.filter((o) => o.kind === "op").map((o) => o.name));
  for (const s of plan.steps) {
    const name = s.kind === "route"
      ? `${s.name}.route`
      : s.kind === "compute"
      ? s.name
      : `${s.name}.send`;
    assert.ok(ran.has(name), name);
  }
  // The plan's windows are the ones explainOverlap shows.
  assert.match(
    explainOverlap(net, scheduler),
    /window blocks\.0\.mlp, blocks\.1\.attn, blocks\.1\.moe\.shared/,
  );
  assert.equal(pass.blocks.length, 2);
});
