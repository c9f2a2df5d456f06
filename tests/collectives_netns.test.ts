import { deepEqual, equal, ok } from "node:assert/strict";
import { createShapedHosts, LINK_MTU } from "../collectives/netns.ts";
import { MAX_CHUNK_BYTES } from "../collectives/nats.ts";

const receiver = `
const l = Deno.listen({ hostname: Deno.args[0], port: 7411 });
console.log("listening");
const c = await l.accept();
const buf = new Uint8Array(1 << 16);
let n = 0, t0 = 0;
for (let k; (k = await c.read(buf)) !== null;) { if (n === 0) t0 = performance.now(); n += k; }
console.log(JSON.stringify({ n, ms: performance.now() - t0 }));
`;
const sender = `
const c = await Deno.connect({ hostname: Deno.args[0], port: 7411 });
const data = new Uint8Array(Number(Deno.args[1]));
for (let o = 0; o < data.length;) o += await c.write(data.subarray(o));
c.close();
`;

Deno.test("netns: bytes between two shaped hosts move at the tc rate", async () => {
  const net = await createShapedHosts({ hosts: 2, rateMbit: 40, net: 77 });
  try {
    const deno = Deno.execPath();
    const rx = net.command(0, [deno, "eval", receiver, net.addresses[0]], { stdout: "piped" })
      .spawn();
    const reader = rx.stdout.pipeThrough(new TextDecoderStream()).getReader();
    equal((await reader.read()).value?.trim(), "listening");
    const bytes = 4_000_000; // 0.8 s at 40 Mbit/s
    const tx = await net.command(1, [deno, "eval", sender, net.addresses[0], String(bytes)])
      .output();
    ok(tx.success);
    let out = "";
    for (let r; !(r = await reader.read()).done;) out += r.value;
    await rx.status;
    const { n, ms } = JSON.parse(out);
    equal(n, bytes);
    const mbit = n * 8 / ms / 1e3;
    console.log(`shaped at 40 Mbit/s, measured ${mbit.toFixed(1)} Mbit/s`);
    ok(mbit > 30 && mbit < 44, `${mbit} Mbit/s`);
    // Jumbo frames on every host's link, so fewer packets wake the readers.
    for (const ns of net.namespaces) {
      const out = await new Deno.Command("ip", { args: ["-n", ns, "-j", "link", "show"] }).output();
      const links: { ifname: string; mtu: number }[] = JSON.parse(
        new TextDecoder().decode(out.stdout),
      );
      deepEqual(links.filter((l) => l.ifname !== "lo").map((l) => l.mtu), [LINK_MTU], ns);
    }
  } finally {
    await net.destroy();
  }
});

Deno.test("netns: NATS ranks on shaped hosts: an all-to-all moves at the server's shaped egress", async () => {
  const rateMbit = 40;
  const net = await createShapedHosts({ hosts: 3, rateMbit, net: 78 });
  const dir = await Deno.makeTempDir({ prefix: "scmoe-netns-" });
  const children: Deno.ChildProcess[] = [];
  const killAll = () =>
    children.forEach((c) => {
      try {
        c.kill("SIGKILL");
      } catch { /* already exited */ }
    });
  const watchdog = setTimeout(killAll, 20_000);
  try {
    // Host 0 runs the server; hosts 1 and 2 run a rank each. Every byte
    // crosses the sender's shaped egress, then the server's.
    await Deno.writeTextFile(`${dir}/nats.conf`, `listen: "${net.addresses[0]}:4222"\n`);
    children.push(
      net.command(0, ["nats-server", "-c", `${dir}/nats.conf`], { stdout: "null", stderr: "null" })
        .spawn(),
    );
    const url = `nats://${net.addresses[0]}:4222`;
    const jobId = crypto.randomUUID();
    const part = 2 << 20;
    const rankMain = new URL("./helpers/collectives_netns_rank.ts", import.meta.url).pathname;
    const config = new URL("../deno.json", import.meta.url).pathname;
    const ranks = [1, 2].map((host, rank) =>
      net.command(host, [
        Deno.execPath(),
        "run",
        "-A",
        `--config=${config}`,
        rankMain,
        url,
        jobId,
        String(rank),
        "2",
        String(part),
      ], { stdout: "piped", stderr: "piped" }).spawn()
    );
    children.push(...ranks);
    const outs = await Promise.all(ranks.map((r) => r.output()));
    const dec = new TextDecoder();
    for (const o of outs) ok(o.success, dec.decode(o.stderr));
    const results = outs.map((o) => JSON.parse(dec.decode(o.stdout)));
    deepEqual(results.map((r) => r.ok), [true, true]);
    // The server's egress carries both parts (4 MiB at 40 Mbit/s), after it has
    // the first chunk whole: it forwards a message once it has all of it.
    const expectMs = ((MAX_CHUNK_BYTES + 2 * part) * 8) / (rateMbit * 1e3);
    const ms = Math.max(...results.map((r) => r.ms));
    console.log(`all-to-all, 2 ranks x ${part} B: ${ms.toFixed(0)} ms; links say ${expectMs} ms`);
    ok(ms > expectMs * 0.85 && ms < expectMs * 1.4 + 200, `took ${ms} ms, expected ${expectMs} ms`);
  } finally {
    clearTimeout(watchdog);
    killAll();
    await Promise.all(children.map((c) => c.status));
    await net.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});
