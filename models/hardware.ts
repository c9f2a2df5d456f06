/**
 * Hardware for the simulator (`simulate.ts`): a device's rates and the
 * topology its ranks talk over, with the time of the collectives the
 * simulator replays (all-to-all over the expert-parallel ranks, ring
 * all-reduce over the data-parallel ones), and the presets: this machine as
 * measured, 8x A30 over PCIe, 8x A800 over NVLink, H100 and H200 nodes over
 * InfiniBand, nodes over 25 Gb Ethernet.
 *
 * A preset's every figure is either measured here (`here`, see
 * {@linkcode HERE_MEASURED}) or a datasheet figure times a stated
 * efficiency; {@linkcode describeHardware} prints them, with where each
 * comes from.
 *
 * @module
 */

/** What one device computes at. */
export interface DeviceRates {
  /** Matrix-multiply FLOP/s reached in practice (a datasheet peak times an efficiency, or measured). */
  matmulFlopsPerS: number;
  /** FLOP/s of attention's per-head (batched, small) matrix multiplies. */
  batchedFlopsPerS: number;
  /** Bytes/s the element-wise kernels move (memory bandwidth reached). */
  memoryBytesPerS: number;
  /** Bytes/s of gathers, transposes, concats and slices. */
  copyBytesPerS: number;
  /** Elements/s through tanh beyond the bytes moved (`Infinity`: fused, free). */
  tanhPerS: number;
  /** Seconds each kernel costs besides its work (launch, per-op dispatch). */
  kernelS: number;
  /**
   * How many of this project's unfused element-wise kernels one of the
   * device's framework kernels does (1: none fused, as tfjs runs them; GPU
   * frameworks fuse norms, GELU and softmax): element-wise bytes and kernels
   * are divided by it.
   */
  fusion: number;
  /** Bytes/s of reading device memory back to the host. */
  hostBytesPerS: number;
  /** Seconds each read back to the host costs besides its bytes (a synchronisation). */
  hostReadS: number;
  /**
   * Whether an exchange's payload is read to the host on the compute thread
   * before it is sent (this project: `x.data()`), or sent from device memory
   * (NCCL: one kernel launch).
   */
  exchangeViaHost: boolean;
  /**
   * A compute step's backward over its forward: 2 (the gradients of the
   * input and of the weights), 3 where the forward is recomputed in the
   * backward (this project's segmented backward does).
   */
  backwardFactor: number;
  /** Bytes per activation element: 4 (float32, this project) or 2 (bf16). */
  bytesPerElement: number;
}

/** A link as a collective sees it, per rank and direction. */
export interface LinkRates {
  /** Bytes/s one rank sends (and receives) over it at once. */
  bytesPerS: number;
  /** Seconds of fixed cost per collective call on it. */
  latencyS: number;
}

/** How the ranks are connected: nodes of `ranksPerNode`, links inside and between nodes. */
export interface Topology {
  /** Ranks (devices) per node. */
  ranksPerNode: number;
  /** Inside a node: per rank (NVLink, PCIe, loopback). */
  intra: LinkRates;
  /** Between nodes: per rank, its share of the node's network cards. */
  inter: LinkRates;
  /** Seconds per peer per all-to-all (a message to set up to each), beyond the latency. */
  perPeerS: number;
}

/** A hardware preset: a device and a topology, with the sources of their figures. */
export interface Hardware {
  /** Its name (`deno task plan --hardware NAME`). */
  name: string;
  /** One line: what it is. */
  summary: string;
  /** Each device. */
  device: DeviceRates;
  /** Their connections. */
  topology: Topology;
  /** Where each figure comes from: datasheet, efficiency assumed, or measured here. */
  sources: string[];
}

/**
 * Seconds of one all-to-all in which each of `ranks` ranks sends
 * `bytesPerRank` bytes in all, an equal share to every rank (itself
 * included: that share stays). Ranks fill nodes in order; a rank's bytes to
 * peers in its node cross the intra-node link, to the others the inter-node
 * one, both at once:
 * `latency + perPeer * (N - 1) + max(intra bytes / intra rate, inter bytes / inter rate)`.
 *
 * @example
 * ```ts
 * import { alltoallS } from "./hardware.ts";
 * const topology = {
 *   ranksPerNode: 2,
 *   intra: { bytesPerS: 100, latencyS: 1 },
 *   inter: { bytesPerS: 10, latencyS: 2 },
 *   perPeerS: 0,
 * };
 * alltoallS(topology, 2, 400); // 1 + 200 / 100 = 3
 * alltoallS(topology, 4, 400); // 2 + max(100 / 100, 200 / 10) = 22
 * ```
 */
export function alltoallS(t: Topology, ranks: number, bytesPerRank: number): number {
  if (ranks <= 1 || bytesPerRank <= 0) return 0;
  const perPeer = bytesPerRank / ranks;
  const inNode = Math.min(ranks, t.ranksPerNode);
  const intra = (inNode - 1) * perPeer / t.intra.bytesPerS;
  const remote = ranks - inNode;
  const inter = remote * perPeer / t.inter.bytesPerS;
  const latency = remote > 0 ? Math.max(t.intra.latencyS, t.inter.latencyS) : t.intra.latencyS;
  return latency + t.perPeerS * (ranks - 1) + Math.max(intra, inter);
}

/**
 * Seconds of one all-reduce of `bytes` over `ranks` ranks that sit `stride`
 * ranks apart (1: consecutive, as an expert-parallel group; the
 * expert-parallel size: one per group, as the replicas of an expert), as
 * NCCL runs it: a ring inside each node and a tree between nodes, so the
 * fixed cost is `2 (members a node - 1)` intra-node latencies and
 * `2 ceil(log2 nodes)` inter-node ones; the bytes cross
 * `2 (n - 1) / n * bytes` at the inter-node rate once the group leaves a
 * node, else at the intra-node one.
 *
 * @example
 * ```ts
 * import { allreduceS } from "./hardware.ts";
 * const topology = {
 *   ranksPerNode: 8,
 *   intra: { bytesPerS: 100, latencyS: 0 },
 *   inter: { bytesPerS: 10, latencyS: 0 },
 *   perPeerS: 0,
 * };
 * allreduceS(topology, 2, 100); // 2 * 1 / 2 * 100 / 100 = 1
 * allreduceS(topology, 2, 100, 8); // across nodes: 10
 * ```
 */
export function allreduceS(t: Topology, ranks: number, bytes: number, stride = 1): number {
  if (ranks <= 1 || bytes <= 0) return 0;
  const nodes = Math.ceil(((ranks - 1) * stride + 1) / t.ranksPerNode);
  const inNode = nodes > 1 ? Math.max(1, Math.floor(t.ranksPerNode / stride)) : ranks;
  const latency = 2 * (inNode - 1) * t.intra.latencyS +
    (nodes > 1 ? 2 * Math.ceil(Math.log2(nodes)) * t.inter.latencyS : 0);
  const rate = nodes > 1 ? t.inter.bytesPerS : t.intra.bytesPerS;
  return latency + (2 * (ranks - 1) / ranks) * bytes / rate;
}

/**
 * This machine, measured: the rates of tfjs's `wasm` backend as a rank of a
 * 2-rank run on its 2 shared cores computes, fitted (`fitDeviceRates` of
 * `calibrate.ts`) to the op times of top-2's traced training steps in
 * `bench/results/tc-full` (`deno task bench simulate --validate-only`
 * fits them again: `validate/here/fit`; the run of 2026-12-03, on a
 * quieter machine than the one before it, which fitted half these rates).
 * The link is 2 rank processes over NATS on loopback: the unshaped
 * all-to-alls of the calibration of 2026-12-02 (38.08 ms for 4 all-to-alls
 * of 0.532 MB each way; the rerun's 74 ms calibration ran beside other
 * work) and `bench collectives`' plain publish/subscribe at about 300 MB/s.
 */
export const HERE_MEASURED = {
  /** When and how the device rates were measured. */
  measured: "fitted to bench/results/tc-full's traced top-2 steps (2 ranks, wasm, 2 shared cores)",
  device: {
    matmulFlopsPerS: 30.1e9,
    batchedFlopsPerS: 8.85e9,
    memoryBytesPerS: 22.8e9,
    copyBytesPerS: 0.629e9,
    tanhPerS: 72.4e6,
    kernelS: 54e-6,
    hostBytesPerS: 1.5e9,
    hostReadS: 50e-6,
    backwardFactor: 3.24,
  },
  /** Loopback NATS between the 2 rank processes (payload bytes/s, fixed cost per all-to-all). */
  link: { bytesPerS: 300e6, latencyS: 7.7e-3 },
} as const;

/** Matmul efficiency assumed for the GPU presets (a fraction of the datasheet's dense peak). */
export const GPU_MATMUL_EFFICIENCY = 0.5;
/** Memory bandwidth efficiency assumed for the GPU presets' element-wise kernels. */
export const GPU_MEMORY_EFFICIENCY = 0.7;

/** Every preset by name. */
export const HARDWARE: Readonly<Record<string, Hardware>> = {
  here: {
    name: "here",
    summary: "this machine as measured: 2 ranks on 2 CPU cores, tfjs wasm, NATS on loopback",
    device: {
      ...HERE_MEASURED.device,
      fusion: 1,
      exchangeViaHost: true,
      bytesPerElement: 4,
    },
    topology: {
      ranksPerNode: 2,
      intra: HERE_MEASURED.link,
      inter: HERE_MEASURED.link,
      perPeerS: 0,
    },
    sources: [
      `device: measured (${HERE_MEASURED.measured})`,
      "link: measured, NATS on loopback (bench/results/tc-full calibration; bench collectives)",
      "backward: about 3x the forward (this project recomputes each segment's forward in its backward)",
    ],
  },
  "a30-pcie": gpuNode({
    name: "a30-pcie",
    summary: "8x A30 over PCIe Gen4 (the paper's first testbed), one node",
    peakFlops: 165e12,
    hbm: 933e9,
    intra: { bytesPerS: 12e9, latencyS: 30e-6 },
    inter: { bytesPerS: 12e9, latencyS: 30e-6 },
    sources: [
      "A30 datasheet: 165 TFLOP/s FP16 tensor, 933 GB/s HBM2",
      "all-to-all over PCIe Gen4 x16 through the host (32 GB/s a direction): 12 GB/s a rank assumed",
    ],
  }),
  "a800-nvlink": gpuNode({
    name: "a800-nvlink",
    summary: "8x A800 SXM over NVLink/NVSwitch (the paper's second testbed), one node",
    peakFlops: 312e12,
    hbm: 2039e9,
    intra: { bytesPerS: 160e9, latencyS: 20e-6 },
    inter: { bytesPerS: 160e9, latencyS: 20e-6 },
    sources: [
      "A800 SXM datasheet: 312 TFLOP/s BF16 tensor, 2.04 TB/s HBM2e, NVLink 400 GB/s (200 a direction)",
      "all-to-all: 80% of NVLink's 200 GB/s a direction assumed",
    ],
  }),
  "h100-ib": gpuNode({
    name: "h100-ib",
    summary: "nodes of 8x H100 SXM over NVLink, one 400 Gb/s InfiniBand NIC per GPU",
    peakFlops: 989e12,
    hbm: 3350e9,
    intra: { bytesPerS: 360e9, latencyS: 20e-6 },
    inter: { bytesPerS: 45e9, latencyS: 25e-6 },
    perPeerS: 0.5e-6,
    sources: [
      "H100 SXM datasheet: 989 TFLOP/s BF16 dense, 3.35 TB/s HBM3, NVLink 900 GB/s (450 a direction)",
      "all-to-all inside a node: 80% of 450 GB/s; between nodes: 45 of 50 GB/s (NDR 400 Gb/s a GPU; DeepEP reaches 43-58 GB/s)",
    ],
  }),
  "h200-ib": gpuNode({
    name: "h200-ib",
    summary: "nodes of 8x H200 SXM over NVLink, one 400 Gb/s InfiniBand NIC per GPU",
    peakFlops: 989e12,
    hbm: 4800e9,
    intra: { bytesPerS: 360e9, latencyS: 20e-6 },
    inter: { bytesPerS: 45e9, latencyS: 25e-6 },
    perPeerS: 0.5e-6,
    sources: [
      "H200 SXM datasheet: 989 TFLOP/s BF16 dense (as H100), 4.8 TB/s HBM3e, NVLink 900 GB/s",
      "links as h100-ib",
    ],
  }),
  "h800-ib": gpuNode({
    name: "h800-ib",
    summary: "nodes of 8x H800 SXM over NVLink (400 GB/s), one 400 Gb/s InfiniBand NIC per GPU",
    peakFlops: 989e12,
    hbm: 3350e9,
    intra: { bytesPerS: 160e9, latencyS: 20e-6 },
    inter: { bytesPerS: 45e9, latencyS: 25e-6 },
    perPeerS: 0.5e-6,
    sources: [
      "H800 SXM: H100's compute and HBM3, NVLink cut to 400 GB/s (200 a direction)",
      "all-to-all inside a node: 160 GB/s (DeepEP's measured 153 of 160); between nodes as h100-ib",
    ],
  }),
  "a30-eth25": gpuNode({
    name: "a30-eth25",
    summary: "nodes of 8x A30 over PCIe, one 25 Gb/s Ethernet port per node",
    peakFlops: 165e12,
    hbm: 933e9,
    intra: { bytesPerS: 12e9, latencyS: 30e-6 },
    inter: { bytesPerS: 0.9 * 25e9 / 8 / 8, latencyS: 60e-6 },
    perPeerS: 2e-6,
    sources: [
      "devices and PCIe as a30-pcie",
      "between nodes: 25 Gb/s Ethernet a node shared by its 8 GPUs, 90% reached over TCP (0.35 GB/s a GPU)",
    ],
  }),
};

interface GpuNodeSpec {
  name: string;
  summary: string;
  peakFlops: number;
  hbm: number;
  intra: LinkRates;
  inter: LinkRates;
  perPeerS?: number;
  sources: string[];
}

/** A node of 8 GPUs in bf16 with a PyTorch-like framework (fused element-wise kernels, NCCL). */
function gpuNode(spec: GpuNodeSpec): Hardware {
  return {
    name: spec.name,
    summary: spec.summary,
    device: {
      matmulFlopsPerS: spec.peakFlops * GPU_MATMUL_EFFICIENCY,
      batchedFlopsPerS: spec.peakFlops * GPU_MATMUL_EFFICIENCY * 0.7,
      memoryBytesPerS: spec.hbm * GPU_MEMORY_EFFICIENCY,
      copyBytesPerS: spec.hbm * GPU_MEMORY_EFFICIENCY,
      tanhPerS: Infinity,
      kernelS: 5e-6,
      fusion: 3,
      hostBytesPerS: 20e9,
      hostReadS: 20e-6,
      exchangeViaHost: false,
      backwardFactor: 2,
      bytesPerElement: 2,
    },
    topology: {
      ranksPerNode: 8,
      intra: spec.intra,
      inter: spec.inter,
      perPeerS: spec.perPeerS ?? 0,
    },
    sources: [
      ...spec.sources,
      `matmul at ${GPU_MATMUL_EFFICIENCY * 100}% of the dense peak and element-wise kernels at ` +
      `${GPU_MEMORY_EFFICIENCY * 100}% of HBM (assumed; Megatron-class MFU), attention's ` +
      "per-head matmuls at 70% of that, bf16, " +
      "3 of this project's element-wise kernels fused into one, 5 us a kernel launch",
      "backward: 2x the forward; routing on the device (one 20 us host read a gate)",
    ],
  };
}

/** The preset names. */
export const HARDWARE_NAMES: readonly string[] = Object.keys(HARDWARE);

/** The lines describing a preset's figures and their sources. */
export function describeHardware(h: Hardware): string[] {
  const d = h.device, t = h.topology;
  const rate = (b: number) => `${formatRate(b)}B/s`;
  return [
    `${h.name}: ${h.summary}`,
    `  device: matmul ${formatRate(d.matmulFlopsPerS)}FLOP/s, memory ${rate(d.memoryBytesPerS)}, ` +
    `${
      (d.kernelS * 1e6).toFixed(0)
    } us a kernel, fusion ${d.fusion}x, backward ${d.backwardFactor}x, ` +
    `${d.bytesPerElement}-byte activations`,
    `  links: ${t.ranksPerNode} ranks a node; inside ${rate(t.intra.bytesPerS)} + ` +
    `${fmtS(t.intra.latencyS)} a call; between nodes ${rate(t.inter.bytesPerS)} + ` +
    `${fmtS(t.inter.latencyS)} a call` +
    (t.perPeerS ? ` + ${fmtS(t.perPeerS)} a peer` : ""),
    ...h.sources.map((s) => `  - ${s}`),
  ];
}

function fmtS(s: number): string {
  return s >= 1e-3 ? `${(s * 1e3).toPrecision(3)} ms` : `${(s * 1e6).toPrecision(3)} us`;
}

/** `1.5 G`, `300 M`: a rate with an SI prefix. */
function formatRate(v: number): string {
  const units: [number, string][] = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [f, u] of units) if (v >= f) return `${Number((v / f).toPrecision(3))} ${u}`;
  return `${Number(v.toPrecision(3))} `;
}
