/**
 * The fault cases: each injects one fault into a small training run (or
 * into the bus) and measures whether the run survived, milliseconds to
 * detect the fault and to recover from it, the steps trained again, and the
 * data lost (asked steps not logged exactly once; must be 0). `deno task
 * bench faults` runs them all; the fault tests run them one by one.
 *
 * @module
 */
import { connectNats } from "../actors/bus_nats.ts";
import {
  Agent,
  type NatsServer,
  placementOf,
  runtimeStats,
  startNatsServer,
} from "../actors/mod.ts";
import { freePort } from "../actors/nats_server.ts";
import { loadLatestValid } from "../models/checkpoint.ts";
import { type FuzzCounts, jobFuzzTarget, publishFuzz } from "./fuzz_frames.ts";
import { type MultihostResult, multihostTrain } from "./multihost.ts";
import { trainWithArgs } from "../cli/train.ts";
import type { Recovery, TrainOptions, TrainSummary } from "../mod.ts";

/** What one fault case measured. */
export interface FaultResult {
  /** The run went on to its end (or the fault was refused, for `no-credentials`). */
  survived: boolean;
  /** From injecting the fault to the system noticing it. */
  detectMs: number;
  /** From noticing it to being ready to go on. */
  recoverMs: number;
  /** Steps trained a second time. */
  stepsRedone: number;
  /** Asked steps not logged exactly once (0 for a run without a step log). */
  dataLost: number;
  /** One line on how the case went, or why it is not run. */
  note: string;
}

/** Steps of the run each training case asks for. */
export const STEPS = 8;
const HEARTBEAT_TIMEOUT_MS = 1500;

/** Command line of the small run every case trains. */
function runArgs(steps: number): string[] {
  return ["--steps", String(steps), "--batch", "4", "--seq", "16", "--eval-every", "0"];
}

async function quiet(dir: string, steps: number, more: string[], options: TrainOptions = {}) {
  return await trainWithArgs([...runArgs(steps), "--out", dir, ...more], {
    verbose: false,
    ...options,
  });
}

/** Asked steps 1..steps not found exactly once in `dir/metrics.jsonl`. */
async function stepsLost(dir: string, steps: number): Promise<number> {
  const lines = (await Deno.readTextFile(`${dir}/metrics.jsonl`)).split("\n");
  return stepsLostIn(lines.filter(Boolean).map((l) => JSON.parse(l).step), steps);
}

/** Asked steps 1..steps not found exactly once among the `logged` steps. */
function stepsLostIn(logged: number[], steps: number): number {
  const seen = new Map<number, number>();
  for (const step of logged) seen.set(step, (seen.get(step) ?? 0) + 1);
  let lost = 0;
  for (let s = 1; s <= steps; s++) if (seen.get(s) !== 1) lost++;
  return lost + [...seen.keys()].filter((s) => s < 1 || s > steps).length;
}

/**
 * The outcome of a run that had to recover once from a fault injected at
 * `injectedAt` (epoch ms): survived when every asked step ran and a recovery
 * happened; `describe` words the note from the first recovery.
 */
async function recoveryOutcome(
  run: TrainSummary,
  dir: string,
  injectedAt: number,
  describe: (r: Recovery | undefined) => string,
): Promise<FaultResult> {
  const [r] = run.recoveries;
  return {
    survived: run.steps === STEPS && r !== undefined,
    detectMs: r ? r.detectedAt - injectedAt : NaN,
    recoverMs: r ? r.recoveredAt - r.detectedAt : NaN,
    stepsRedone: run.recoveries.reduce((n, x) => n + x.stepsRedone, 0),
    dataLost: await stepsLost(dir, STEPS),
    note: describe(r),
  };
}

async function killRank(dir: string): Promise<FaultResult> {
  let killedAt = 0;
  const flags = ["--cluster", "nats", "--ckpt-every", "3", "--collective-timeout", "15"];
  const run = await quiet(dir, STEPS, flags, {
    init: { heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS },
    onStep: (step, group) => {
      if (step !== 4 || killedAt) return;
      const pid = Number(/process (\d+)/.exec(placementOf(group.handles[1]))![1]);
      setTimeout(() => {
        killedAt = Date.now();
        Deno.kill(pid, "SIGKILL");
      }, 40);
    },
  });
  return await recoveryOutcome(
    run,
    dir,
    killedAt,
    (r) =>
      r ? `rank 1 SIGKILLed in step ${r.step}; restarted, resumed at step ${r.resumedFrom}` : "",
  );
}

/** Milliseconds the nats-server stays down in `restart-nats` (well under the heartbeat timeout). */
export const NATS_DOWN_MS = 300;

/**
 * `restart-nats`: trains {@linkcode STEPS} steps on a `nats://` cluster whose
 * server (with a host agent on it) the case owns; 40 ms into step 5 the
 * server is SIGKILLed and started again {@linkcode NATS_DOWN_MS} later on the
 * same port and token. The outage is shorter than the heartbeat timeout
 * (3 s), so no rank is declared dead: the driver fails the step on its own
 * connection's drop, and once every rank answers again the group is re-formed
 * at the last checkpoint (step 3).
 */
export async function restartNats(dir: string): Promise<FaultResult> {
  const port = freePort();
  let server: NatsServer = await startNatsServer({ port });
  const token = server.token!;
  let agent: Agent | undefined;
  let killedAt = 0;
  let restarting: Promise<void> | undefined;
  try {
    agent = await Agent.start({ servers: [server.url], token });
    const flags = ["--cluster", server.url, "--ckpt-every", "3", "--collective-timeout", "5"];
    const run = await quiet(dir, STEPS, flags, {
      init: { token, heartbeatTimeoutMs: 3000 },
      onStep: (step) => {
        if (step !== 4 || killedAt) return;
        restarting = new Promise((r) => setTimeout(r, 40)).then(async () => {
          killedAt = Date.now();
          await server.stop();
          await new Promise((r) => setTimeout(r, NATS_DOWN_MS));
          server = await startNatsServer({ port, token });
        });
      },
    });
    return await recoveryOutcome(
      run,
      dir,
      killedAt,
      (r) =>
        r
          ? `nats-server killed in step ${r.step}, back after ${NATS_DOWN_MS} ms; ` +
            `resumed at step ${r.resumedFrom}, ranks kept (incarnations ${r.incarnations})`
          : "the outage went unnoticed",
    );
  } finally {
    await restarting?.catch(() => {});
    await agent?.stop();
    await server.stop();
  }
}

async function nanLoss(dir: string): Promise<FaultResult> {
  const run = await quiet(dir, STEPS, ["--max-bad-steps", "2"], { nanGradSteps: [2] });
  return {
    survived: run.steps === STEPS && run.skippedSteps.join() === "3",
    detectMs: 0,
    recoverMs: 0,
    stepsRedone: 0,
    dataLost: await stepsLost(dir, STEPS),
    note: `NaN gradient at step 3: skipped on every rank (steps skipped: ${run.skippedSteps})`,
  };
}

async function badCheckpoint(dir: string): Promise<FaultResult> {
  await quiet(dir, 6, ["--ckpt-every", "2"]);
  const file = `${dir}/ckpt-000006/model.safetensors`;
  const bytes = await Deno.readFile(file);
  bytes[bytes.length >> 1] ^= 1;
  await Deno.writeFile(file, bytes);
  const t0 = performance.now();
  const found = await loadLatestValid(dir);
  const detectMs = performance.now() - t0;
  const t1 = performance.now();
  const run: TrainSummary = await quiet(dir, 6, ["--ckpt-every", "2", "--resume"]);
  return {
    survived: found?.contents.state.step === 4 && run.steps === 6,
    detectMs,
    recoverMs: performance.now() - t1,
    stepsRedone: 6 - (found?.contents.state.step ?? 0),
    dataLost: await stepsLost(dir, 6),
    note: `bit flipped in ckpt-000006: ${found?.skipped.length} skipped by checksum, resumed at 4`,
  };
}

async function fuzzFrames(dir: string, frames: number): Promise<FaultResult> {
  let counts: FuzzCounts | undefined;
  let fuzzing: Promise<FuzzCounts> | undefined;
  let startedAt = 0;
  let rejected = 0;
  const run = await quiet(dir, STEPS, ["--cluster", "nats"], {
    onStep: async (step, group) => {
      if (step === 1) {
        startedAt = performance.now();
        fuzzing = publishFuzz(jobFuzzTarget(group), frames);
      }
      if (step !== STEPS) return;
      counts = await fuzzing!;
      for (let tries = 0; tries < 100; tries++) {
        const data = (await group.all((r) => r.droppedFrames())).reduce((a, b) => a + b, 0);
        rejected = runtimeStats().rejectedFrames + data;
        if (rejected >= counts.driver + counts.data) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  });
  const expected = counts ? counts.driver + counts.data : NaN;
  return {
    survived: run.steps === STEPS && rejected === expected,
    detectMs: 0,
    recoverMs: 0,
    stepsRedone: 0,
    dataLost: await stepsLost(dir, STEPS),
    note: `${frames} frames in ${((performance.now() - startedAt) / 1000).toFixed(1)} s; ` +
      `${rejected} of ${expected} sent to the driver and data plane counted as rejected`,
  };
}

async function noCredentials(): Promise<FaultResult> {
  const server = await startNatsServer();
  try {
    const t0 = performance.now();
    const refused = await connectNats({ servers: [server.url] }, "intruder").then(
      async (nc) => (await nc.close(), false),
      (e) => /Authorization Violation/.test(String(e)),
    );
    return {
      survived: refused,
      detectMs: performance.now() - t0,
      recoverMs: 0,
      stepsRedone: 0,
      dataLost: 0,
      note: refused ? "a client without the token was refused" : "a client got in without a token",
    };
  } finally {
    await server.stop();
  }
}

function notRun(note: string): () => Promise<FaultResult> {
  return () =>
    Promise.resolve({
      survived: false,
      detectMs: NaN,
      recoverMs: NaN,
      stepsRedone: 0,
      dataLost: 0,
      note,
    });
}

/** Milliseconds host 2 stays cut off in `cut-host`. */
const CUT_MS = 3000;

/**
 * `cut-host`: {@linkcode STEPS} steps of 2 ranks across emulated hosts
 * (network namespaces, root; {@link ./multihost.ts}), host 2 (rank 1) cut off
 * for {@linkcode CUT_MS} after step 3, less than the heartbeat timeout: the
 * failed step is noticed by its collective deadline (1.5 s), the same ranks
 * re-form once the link is back and reload the checkpoint of step 2.
 * Detect: cut to failure noticed; recover: link back to ranks re-formed.
 */
async function cutHost(): Promise<FaultResult> {
  const r = await multihostTrain({
    topology: "single",
    flags: [...runArgs(STEPS), "--ranks", "2", "--ckpt-every", "2", "--collective-timeout", "1.5"],
    net: 93,
    heartbeatMs: 10_000,
    cut: { afterStep: 3, forMs: CUT_MS },
    deadlineMs: 90_000,
  });
  return cutOutcome(r, "host 2");
}

/**
 * `cut-host-4`: the same on 4 hosts of a routed NATS cluster (one server,
 * agent and rank a host; 8 experts), host 4 (rank 3) cut off for
 * {@linkcode CUT_MS} after step 3: survived when the run completes all
 * steps after a recovery.
 */
async function cutHost4(): Promise<FaultResult> {
  const r = await multihostTrain({
    topology: "routed",
    hosts: 4,
    flags: [
      ...runArgs(STEPS),
      "--ranks",
      "4",
      "--experts",
      "8",
      "--ckpt-every",
      "2",
      "--collective-timeout",
      "1.5",
    ],
    net: 94,
    heartbeatMs: 10_000,
    cut: { afterStep: 3, forMs: CUT_MS, host: 4 },
    deadlineMs: 150_000,
  });
  return cutOutcome(r, "host 4 of 4");
}

/** A cut-host case's figures: survived when every step is done after a recovery. */
function cutOutcome(r: MultihostResult, host: string): FaultResult {
  const rec = r.report?.recoveries[0];
  return {
    survived: r.report?.steps === STEPS && rec !== undefined,
    detectMs: rec && r.cut ? rec.detectedAt - r.cut.downAt : NaN,
    recoverMs: rec && r.cut?.upAt ? rec.recoveredAt - r.cut.upAt : NaN,
    stepsRedone: r.report?.recoveries.reduce((n, x) => n + x.stepsRedone, 0) ?? 0,
    dataLost: r.report ? stepsLostIn(r.report.loggedSteps, STEPS) : STEPS,
    note: rec
      ? `${host} cut off ${CUT_MS / 1000} s in step ${rec.step}: ${rec.reason.slice(0, 60)}...; ` +
        `resumed at step ${rec.resumedFrom}`
      : `driver exit ${r.driverExit}: ${r.driverError}`,
  };
}

/**
 * `kill-server-4`: 4 hosts of a routed NATS cluster, host 4's nats-server
 * killed (SIGKILL) after step 3: its agent and rank lose their server, so
 * the rank cannot be restarted there; the run stops with one line (exit 3)
 * naming the missing rank and the server. Survived: never (the job is
 * expected to stop); detect: kill to failure noticed.
 */
async function killServer4(): Promise<FaultResult> {
  const r = await multihostTrain({
    topology: "routed",
    hosts: 4,
    flags: [...runArgs(STEPS), "--ranks", "4", "--experts", "8", "--collective-timeout", "1.5"],
    net: 95,
    killServer: { afterStep: 3, host: 4 },
    deadlineMs: 120_000,
  });
  const line = r.driverError;
  return {
    survived: r.driverExit === 0,
    detectMs: NaN,
    recoverMs: NaN,
    stepsRedone: 0,
    dataLost: r.report ? stepsLostIn(r.report.loggedSteps, STEPS) : STEPS,
    note: `driver exit ${r.driverExit}${r.killedAt ? " after the kill" : ""}: ${
      line.slice(0, 160)
    }`,
  };
}

/** One fault case: its name and how to run it in a folder of its own. */
export type FaultCase = [name: string, run: (dir: string) => Promise<FaultResult>];

/**
 * Every fault case, in the order `deno task bench faults` runs them; the
 * ones that need network namespaces say so when not run as root.
 */
export function faultCases(quick: boolean): FaultCase[] {
  return [
    ["kill-rank", killRank],
    ["restart-nats", restartNats],
    [
      "cut-host",
      () => Deno.uid() === 0 ? cutHost() : notRun("not run: network namespaces need root")(),
    ],
    [
      "cut-host-4",
      () => Deno.uid() === 0 ? cutHost4() : notRun("not run: network namespaces need root")(),
    ],
    [
      "kill-server-4",
      () => Deno.uid() === 0 ? killServer4() : notRun("not run: network namespaces need root")(),
    ],
    ["bad-checkpoint", badCheckpoint],
    ["nan-loss", nanLoss],
    ["fuzz-frames", (dir) => fuzzFrames(dir, quick ? 2000 : 10_000)],
    ["no-credentials", noCredentials],
  ];
}

/** A case that ran into an unexpected error: not survived, with the error's first line. */
export async function failedCase(e: unknown): Promise<FaultResult> {
  return { ...(await notRun("")()), note: `failed: ${String(e).split("\n")[0]}` };
}
