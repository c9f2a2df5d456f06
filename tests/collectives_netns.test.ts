import { equal, ok } from "node:assert/strict";
import { createShapedHosts } from "../collectives/netns.ts";

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
  } finally {
    await net.destroy();
  }
});
