/**
 * Actors load from the user's own modules, outside the package, under the
 * module roots of the driver, of the agents and of each actor host; nothing
 * named by a message is fetched or run: forged creates and spawn requests
 * are refused and counted, and the actors keep working.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { fileURLToPath } from "node:url";
import {
  Agent,
  get,
  init,
  jobId,
  ModuleNotAllowedError,
  natsCredentials,
  placementOf,
  remote,
  runtimeStats,
  shutdown,
  startNatsServer,
} from "../actors/mod.ts";
import { agentSubject, type SpawnRequest } from "../actors/agent.ts";
import { nodeSubject } from "../actors/bus_nats.ts";
import { Chunker, decode, encode } from "../actors/codec.ts";
import type { Message } from "../actors/protocol.ts";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";
import type { Forger } from "./fixtures/actors.ts";

const FIXTURES = new URL("./fixtures/actors.ts", import.meta.url);
const ForgerActor = remote<typeof Forger>(FIXTURES, "Forger");

/** The user's own module, in a folder outside the package's tree. */
const USER_DIR = await Deno.makeTempDir({ prefix: "scmoe-user-" });
globalThis.addEventListener("unload", () => Deno.removeSync(USER_DIR, { recursive: true }));
const USER_ROOT = new URL(`file://${USER_DIR}/`).href;
const GREETER = new URL("greeter.ts", USER_ROOT);
await Deno.writeTextFile(
  GREETER,
  `/** A user's actor, outside the package. */
export class Greeter {
  count = 0;
  constructor(readonly greeting = "hello") {}
  greet(name: string): string {
    this.count++;
    return \`\${this.greeting}, \${name} (\${this.count})\`;
  }
  pid(): number {
    return Deno.pid;
  }
}
`,
);
declare class Greeter {
  constructor(greeting?: string);
  greet(name: string): string;
  pid(): number;
}
const GreeterActor = remote<typeof Greeter>(GREETER, "Greeter");
assert.ok(!GREETER.href.startsWith(new URL("../", import.meta.url).href), "outside the package");

/** A TCP listener that counts the connections made to it: a module served there was fetched. */
function connectionCounter(): { port: number; count: () => number; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let count = 0;
  (async () => {
    try {
      for await (const conn of listener) {
        count++;
        conn.close();
      }
    } catch { /* closed */ }
  })();
  return { port: listener.addr.port, count: () => count, close: () => listener.close() };
}

/** Proves the counter counts (so that its 0 means nothing connected), then closes it. */
async function closeCounter(c: ReturnType<typeof connectionCounter>): Promise<void> {
  const before = c.count();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: c.port });
  await until(() => c.count() === before + 1, "the counter saw a test connection");
  conn.close();
  c.close();
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const giveUp = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > giveUp) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function createMessage(actorId: string, moduleUrl: string, exportName: string): Message {
  return {
    type: "create",
    actorId,
    incarnation: 0,
    moduleUrl,
    exportName,
    args: ["forged"],
    options: { maxConcurrency: 1 },
  };
}

Deno.test("local: a user's module outside the package runs with init({ moduleRoots })", async () => {
  const evil = connectionCounter();
  await init({ moduleRoots: [USER_DIR] });
  try {
    assert.ok(runtimeStats().moduleRoots.includes(USER_ROOT), "a path becomes a file: folder URL");
    const g = await GreeterActor.remote("hi");
    assert.equal(await g.greet("ada"), "hi, ada (1)");

    // Forged creates from another actor on the bus: refused, counted, the actor unharmed.
    const forger = await ForgerActor.remote();
    const before = runtimeStats().refusedCreates;
    const evilUrl = `https://127.0.0.1:${evil.port}/evil.ts`;
    await get([
      forger.forgeCreate(g.actorId, evilUrl, "Evil"), // outside every root
      forger.forgeCreate(g.actorId, FIXTURES.href, "Probe"), // allowed, but not this actor's
      forger.forgeCreate(g.actorId, GREETER.href, "Greeter"), // its module, a second create
      forger.forgeCreate(g.actorId, `${USER_ROOT}..%2Fetc/x.ts`, "X"), // an escaped "/"
    ]);
    await until(() => runtimeStats().refusedCreates === before + 4, "4 refusals were counted");
    assert.equal(await g.greet("bob"), "hi, bob (2)", "the actor keeps its state and works");
    assert.equal(evil.count(), 0, "the forged https: module was never fetched");
  } finally {
    await shutdown();
    await closeCounter(evil);
  }
});

Deno.test("without its root, the user's module is refused at the driver with ModuleNotAllowedError", async () => {
  const evil = connectionCounter();
  await init();
  try {
    const err = await GreeterActor.remote().then(() => null, (e) => e);
    assert.ok(err instanceof ModuleNotAllowedError, `got ${err}`);
    assert.equal(err.moduleUrl, GREETER.href);
    assert.ok(!err.message.includes("\n"), "one line");
    assert.match(
      err.message,
      /^actor module file:\/\/\S+\/greeter\.ts is outside the allowed module/,
    );
    assert.ok(err.message.includes(new URL("../", import.meta.url).href), "names the package root");
    assert.match(err.message, /add its folder to init\(\{ moduleRoots \}\)$/);
    assert.equal(runtimeStats().actors, 0, "nothing was created");

    const Evil = remote(`https://127.0.0.1:${evil.port}/evil.ts`, "Evil");
    await assert.rejects(Evil.remote(), ModuleNotAllowedError);
    await assert.rejects(remote("not a url", "X").remote(), /actor module URL is not a URL/);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(evil.count(), 0, "the https: module was never fetched");
  } finally {
    await shutdown();
    await closeCounter(evil);
  }
  await assert.rejects(init({ moduleRoots: ["ftp://example.com/lib/"] }), (e: Error) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /only file: and https: roots are accepted/);
    return true;
  });
  await assert.rejects(init({ moduleRoots: ["http://example.com/lib/"] }), TypeError);
  await init({ moduleRoots: ["relative/dir", new URL("https://example.com/lib")] });
  try {
    const roots = runtimeStats().moduleRoots;
    assert.ok(roots.includes(new URL(`file://${Deno.cwd()}/relative/dir/`).href), `${roots}`);
    assert.ok(roots.includes("https://example.com/lib/"), `${roots}`);
  } finally {
    await shutdown();
  }
});

Deno.test("nats: the user's module runs in an actor process; a create forged on NATS is refused", async () => {
  const evil = connectionCounter();
  await init({ cluster: "nats", moduleRoots: [USER_DIR] });
  try {
    const g = await GreeterActor.remote();
    assert.equal(await g.greet("ada"), "hello, ada (1)");
    assert.notEqual(await g.pid(), Deno.pid);
    await assert.rejects(
      remote(new URL("elsewhere.ts", `file://${USER_DIR}-x/`), "X").remote(),
      ModuleNotAllowedError,
    );
    // An outsider holding the job's NATS credentials publishes creates to the actor.
    const before = runtimeStats().refusedCreates;
    const nc = await connect(natsCredentials());
    const chunker = new Chunker(1 << 16);
    for (
      const msg of [
        createMessage(g.actorId, `https://127.0.0.1:${evil.port}/evil.ts`, "Evil"),
        createMessage(g.actorId, FIXTURES.href, "Probe"),
        createMessage(g.actorId, GREETER.href, "Greeter"),
      ]
    ) {
      for (const f of chunker.frames(encode(msg))) nc.publish(nodeSubject(jobId(), g.actorId), f);
    }
    await nc.flush();
    await nc.close();
    await until(() => runtimeStats().refusedCreates === before + 3, "3 refusals were counted");
    assert.equal(await g.greet("bob"), "hello, bob (2)", "the actor keeps its state and works");
    assert.equal(evil.count(), 0, "the forged https: module was never fetched");
  } finally {
    await shutdown();
    await closeCounter(evil);
  }
});

Deno.test("an agent allows only its own module roots; a forged spawn request is refused", async () => {
  const server = await startNatsServer();
  const creds = { servers: [server.url], token: server.token };
  const evil = connectionCounter();
  const withRoot = await Agent.start(creds, { moduleRoots: [USER_DIR] });
  const packageOnly = await Agent.start(creds);
  try {
    assert.deepEqual(packageOnly.moduleRoots, [new URL("../", import.meta.url).href]);
    await init({ cluster: server.url, token: server.token, moduleRoots: [USER_DIR] });
    try {
      const g = await GreeterActor.options({ host: withRoot.info.agentId }).remote("hey");
      assert.match(placementOf(g), new RegExp(`agent ${withRoot.info.agentId}`));
      assert.equal(await g.greet("ada"), "hey, ada (1)");

      // The driver allows the module, this agent does not: its own list decides.
      const err = await GreeterActor.options({ host: packageOnly.info.agentId }).remote()
        .then(() => null, (e) => e);
      assert.ok(err instanceof Error && !(err instanceof ModuleNotAllowedError), `got ${err}`);
      assert.ok(!err.message.includes("\n"), "one line");
      assert.match(
        err.message,
        new RegExp(
          `agent ${packageOnly.info.agentId} refuses actor module ${GREETER.href}: ` +
            `outside its module roots \\(.+\\); start the agent with --allow-module-root ${USER_DIR}/$`,
        ),
      );
      assert.equal(packageOnly.refusedSpawns, 1);
      assert.equal(packageOnly.children, 0);
    } finally {
      await shutdown();
    }

    // A spawn request forged by anyone with the NATS credentials, straight to the agent.
    const nc = await connect(creds);
    try {
      const forged: SpawnRequest = {
        jobId: "forgedjob",
        actorId: "a0",
        incarnation: 0,
        heartbeatMs: 500,
        moduleUrl: `https://127.0.0.1:${evil.port}/evil.ts`,
        exportName: "Evil",
        moduleRoots: [`https://127.0.0.1:${evil.port}/`],
      };
      const reply = decode(
        (await nc.request(agentSubject(withRoot.info.agentId, "spawn"), encode(forged), {
          timeout: 5000,
        })).data,
      ) as { ok: boolean; error?: string };
      assert.equal(reply.ok, false);
      assert.match(reply.error!, /refuses actor module https:\/\/127\.0\.0\.1:\d+\/evil\.ts/);
      assert.match(reply.error!, /--allow-module-root https:\/\/127\.0\.0\.1:\d+\/$/);
      assert.equal(withRoot.refusedSpawns, 1);
      assert.equal(withRoot.children, 0, "nothing was spawned");
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(evil.count(), 0, "the https: module was never fetched");
    } finally {
      await nc.close();
    }
  } finally {
    await withRoot.stop();
    await packageOnly.stop();
    await server.stop();
    await closeCounter(evil);
  }
});

Deno.test("deno task agent --allow-module-root DIR: the agent's processes build the user's actors", async () => {
  const server = await startNatsServer();
  const agentMain = new URL("../cli/agent.ts", import.meta.url);
  const run = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", fileURLToPath(agentMain), "--nats", server.url, ...args],
      env: { SCMOE_NATS_TOKEN: server.token! },
      stdout: "piped",
      stderr: "piped",
    });
  try {
    const bad = await run("--allow-module-root", "ftp://example.com/x/").output();
    assert.equal(bad.code, 2);
    const badErr = new TextDecoder().decode(bad.stderr).trim();
    assert.match(badErr, /^error: --allow-module-root: .*only file: and https: roots/);
    assert.ok(!badErr.includes("\n"), "one line");

    const child = run(
      "--allow-module-root",
      USER_DIR,
      "--allow-module-root",
      "https://example.com/lib",
    ).spawn();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const { value } = await reader.read();
      reader.releaseLock();
      const line = value ?? "";
      assert.match(line, /agent (\w+) on/);
      assert.ok(line.includes(USER_ROOT), line);
      assert.ok(line.includes(" https://example.com/lib/"), line);
      await init({ cluster: server.url, token: server.token, moduleRoots: [USER_DIR] });
      try {
        const g = await GreeterActor.remote("yo");
        assert.equal(await g.greet("ada"), "yo, ada (1)");
      } finally {
        await shutdown();
      }
    } finally {
      child.kill("SIGINT");
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      assert.equal((await child.status).code, 0);
    }
  } finally {
    await server.stop();
  }
});

/** A self-signed certificate for 127.0.0.1, made by openssl (`deno task test` installs it). */
async function selfSignedCert(dir: string): Promise<{ cert: string; key: string }> {
  const out = await new Deno.Command("openssl", {
    args: [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"],
      ...[
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
      ],
      ...["-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`],
    ],
    stdout: "null",
    stderr: "null",
  }).output().catch((e) => {
    throw new Error(`openssl could not run (deno task test installs it): ${e.message}`);
  });
  if (!out.success) throw new Error(`openssl failed to make a certificate (exit ${out.code})`);
  return {
    cert: await Deno.readTextFile(`${dir}/cert.pem`),
    key: await Deno.readTextFile(`${dir}/key.pem`),
  };
}

Deno.test("an actor module served over https: loads under an https: root", async () => {
  const dir = await Deno.makeTempDir({ prefix: "scmoe-tls-" });
  const tls = await selfSignedCert(dir);
  const source = await Deno.readTextFile(GREETER);
  let served = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, ...tls, onListen: () => {} },
    (req) => {
      if (new URL(req.url).pathname !== "/lib/greeter.ts") {
        return new Response(null, { status: 404 });
      }
      served++;
      return new Response(source, { headers: { "content-type": "application/typescript" } });
    },
  );
  try {
    const root = `https://127.0.0.1:${server.addr.port}/lib/`;
    // A copy of the lock file takes the module's hash, leaving the project's alone.
    const lock = `${dir}/deno.lock`;
    await Deno.copyFile(new URL("../deno.lock", import.meta.url), lock);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        V8_HEAP_FLAG,
        `--lock=${lock}`,
        fileURLToPath(new URL("./helpers/https_module_driver.ts", import.meta.url)),
        "local",
        root,
        `${root}greeter.ts`,
      ],
      env: { DENO_CERT: `${dir}/cert.pem` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
      reply: "over tls, ada (1)",
    });
    assert.equal(served, 1, "the module was fetched once, over TLS");
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
