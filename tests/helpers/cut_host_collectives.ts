/**
 * The `cut-host` fault at the collective level: three network namespaces
 * (`collectives/netns.ts`), a token-protected nats-server in host 0 and one
 * rank process ({@link ./cut_host_rank.ts}) in each of hosts 1 and 2.
 * Host 2's link is set down while the ranks all-reduce every slot: rank 0's
 * collectives fail by their deadline naming rank 1; with the link set up
 * again both ranks succeed again, or without it each rank stops with one line
 * after its budget. Namespaces and processes are removed whatever happens.
 *
 * @module
 */
import { createShapedHosts, setLink, type ShapedHosts } from "../../collectives/netns.ts";
import type { FaultResult } from "../../harness/fault_cases.ts";

const RANK_MAIN = new URL("./cut_host_rank.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** Options of {@linkcode cutHost}. */
export interface CutHostOptions {
  /** Milliseconds the link stays down; `null`: never set up again (default 3000). */
  cutMs?: number | null;
  /** Each rank stops after this long without a successful collective (default 20 s). */
  budgetMs?: number;
  /** Third octet of the hosts' 10.213.x.0/24 network (default 91). */
  net?: number;
}

/** What {@linkcode cutHost} saw, besides the fault figures. */
export interface CutHostResult extends FaultResult {
  /** First failure rank 0 reported after the cut (one line). */
  error: string;
  /** Exit code and last `error:` line of each rank that stopped by itself (budget spent). */
  stopped: { code: number; error: string }[];
}

interface Line {
  t: number;
  slot: number;
  ok: boolean;
  error?: string;
}

/** A rank process with the lines it printed so far. */
class RankProcess {
  readonly lines: Line[] = [];
  readonly exit: Promise<{ code: number; error: string }>;
  readonly #child: Deno.ChildProcess;

  constructor(net: ShapedHosts, host: number, args: string[], env: Record<string, string>) {
    this.#child = net.command(host, [
      Deno.execPath(),
      "run",
      "-A",
      `--config=${CONFIG}`,
      RANK_MAIN,
      ...args,
    ], { stdout: "piped", stderr: "piped", env }).spawn();
    const reading = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({
        write: (chunk) => {
          for (const l of chunk.split("\n").filter((l) => l.startsWith("{"))) {
            this.lines.push({ t: Date.now(), ...JSON.parse(l) });
          }
        },
      }),
    );
    const stderr = new Response(this.#child.stderr).text();
    this.exit = Promise.all([this.#child.status, stderr, reading]).then(([s, err]) => ({
      code: s.code,
      error: err.split("\n").filter((l) => l.startsWith("error:")).pop() ?? err.trim(),
    }));
  }

  /** The first line after `since` that `ok` accepts (waits for it, up to `timeoutMs`). */
  async first(since: number, ok: (l: Line) => boolean, timeoutMs: number): Promise<Line> {
    const giveUp = Date.now() + timeoutMs;
    while (Date.now() < giveUp) {
      const l = this.lines.find((l) => l.t >= since && ok(l));
      if (l) return l;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(
      `no such line within ${timeoutMs} ms; last: ${JSON.stringify(this.lines.at(-1))}`,
    );
  }

  /** SIGKILLs the process (if still running) and waits for it. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.exit;
  }
}

/** Runs the `cut-host` fault (root only: it makes network namespaces). */
export async function cutHost(opts: CutHostOptions = {}): Promise<CutHostResult> {
  const { cutMs = 3000, budgetMs = 20_000 } = opts;
  const net = await createShapedHosts({ hosts: 3, rateMbit: 1000, net: opts.net ?? 91 });
  const dir = await Deno.makeTempDir({ prefix: "scmoe-cut-" });
  const token = crypto.randomUUID().replaceAll("-", "");
  const ranks: RankProcess[] = [];
  let server: Deno.ChildProcess | undefined;
  try {
    const listen = `${net.addresses[0]}:4222`;
    await Deno.writeTextFile(
      `${dir}/nats.conf`,
      `listen: "${listen}"\nauthorization { token: "${token}" }\n`,
      { mode: 0o600 },
    );
    server = net.command(0, ["nats-server", "-c", `${dir}/nats.conf`], {
      stdout: "null",
      stderr: "null",
    }).spawn();
    const job = crypto.randomUUID().slice(0, 8);
    for (const rank of [0, 1]) {
      const args = ["--nats", `nats://${listen}`, "--job", job, "--rank", String(rank)];
      ranks.push(
        new RankProcess(net, rank + 1, [...args, "--size", "2", "--budget-ms", String(budgetMs)], {
          SCMOE_NATS_TOKEN: token,
        }),
      );
    }
    await Promise.all(ranks.map((r) => r.first(0, (l) => l.ok, 20_000)));

    const cutAt = Date.now();
    await setLink(net, 2, "down");
    const missing = `ranks that did not deliver: 1`;
    const failed = await ranks[0].first(cutAt, (l) => !l.ok && l.error!.includes(missing), 5000);
    let recoverMs = NaN;
    let stopped: { code: number; error: string }[] = [];
    if (cutMs === null) {
      stopped = await Promise.all(ranks.map((r) => r.exit));
    } else {
      await new Promise((r) => setTimeout(r, cutAt + cutMs - Date.now()));
      await setLink(net, 2, "up");
      const upAt = Date.now();
      const [a, b] = await Promise.all(ranks.map((r) => r.first(upAt, (l) => l.ok, 30_000)));
      // The first slot both ranks completed, once each has one.
      const slot = Math.max(a.slot, b.slot);
      const both = await Promise.all(
        ranks.map((r) => r.first(upAt, (l) => l.ok && l.slot >= slot, 5000)),
      );
      recoverMs = Math.max(...both.map((l) => l.t)) - upAt;
    }
    const failedSlots = ranks[0].lines.filter((l) => l.t >= cutAt && !l.ok).length;
    return {
      survived: cutMs === null ? stopped.every((s) => s.code === 3) : recoverMs >= 0,
      detectMs: failed.t - cutAt,
      recoverMs,
      stepsRedone: 0,
      dataLost: 0,
      note: `host 2 (rank 1) cut ${cutMs === null ? "for good" : `for ${cutMs} ms`}: ` +
        `rank 0 "${failed.error}"; ${failedSlots} collectives failed` +
        (cutMs === null
          ? `; ranks stopped (exit ${stopped.map((s) => s.code)})`
          : "; then ok again"),
      error: failed.error!,
      stopped,
    };
  } finally {
    await Promise.all(ranks.map((r) => r.kill()));
    try {
      server?.kill("SIGKILL");
    } catch { /* already gone */ }
    await server?.status;
    await net.destroy();
    await Deno.remove(dir, { recursive: true });
  }
}
