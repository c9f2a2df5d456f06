/**
 * The set-up step of `deno task test` (`tools/test_setup.ts`): a no-op when
 * nats-server and ip are on PATH; one line with the install command when they
 * are missing and the user is not root; apt-get when root. Missing commands
 * are simulated by a PATH of fakes, root-ness by `SCMOE_SETUP_UID`; the
 * real nats-server and apt-get are never touched.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { findOnPath, installCommand, missing, NEEDS } from "../tools/test_setup.ts";

const SCRIPT = new URL("../tools/test_setup.ts", import.meta.url).pathname;

/** Runs the set-up script with `env` (PATH replaced) and returns its exit code and output. */
async function runSetup(env: Record<string, string>) {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: text(out.stdout),
    stderr: text(out.stderr),
    ms: performance.now() - t0,
  };
}

/**
 * A directory of fake executables, each a shell script that knows its
 * directory as `$here` (the PATH it runs with holds only fakes).
 */
async function fakes(scripts: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "scmoe-setup-" });
  for (const [name, body] of Object.entries(scripts)) {
    await Deno.writeTextFile(`${dir}/${name}`, `#!/bin/sh\nhere='${dir}'\n${body}\n`, {
      mode: 0o755,
    });
  }
  return dir;
}

const emptySbin = () => Deno.makeTempDir({ prefix: "scmoe-sbin-" });

Deno.test("test setup: with every command on PATH it is a quick no-op", async () => {
  deepEqual(missing(), [], "this machine has them all (the suite needs them)");
  const r = await runSetup({ PATH: Deno.env.get("PATH")! });
  equal(r.code, 0, r.stderr);
  equal(r.stdout + r.stderr, "");
  ok(r.ms < 10_000, `${r.ms} ms`);
  console.log(`no-op set-up in ${r.ms.toFixed(0)} ms`);
});

Deno.test("test setup: missing and not root, one line with the command, exit 1", async () => {
  const dir = await fakes({ ip: "exit 0", openssl: "exit 0" });
  const sbin = await emptySbin();
  try {
    const onlyNats = await runSetup({ PATH: dir, SCMOE_SETUP_UID: "1000", SCMOE_SETUP_SBIN: sbin });
    equal(onlyNats.code, 1);
    equal(onlyNats.stdout, "");
    equal(onlyNats.stderr.trimEnd().split("\n").length, 1, onlyNats.stderr);
    match(
      onlyNats.stderr,
      /^test setup: nats-server not found on PATH; run: sudo apt-get update && sudo apt-get install -y nats-server\n$/,
    );
    const none = await runSetup({ PATH: sbin, SCMOE_SETUP_UID: "1000", SCMOE_SETUP_SBIN: sbin });
    equal(none.code, 1);
    equal(none.stderr.trimEnd().split("\n").length, 1, none.stderr);
    match(none.stderr, /nats-server, ip \(iproute2\) and openssl not found on PATH/);
    match(
      none.stderr,
      /run: sudo apt-get update && sudo apt-get install -y nats-server iproute2 openssl$/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(sbin, { recursive: true });
  }
});

Deno.test("test setup: installed in an sbin directory off PATH, it says which PATH to set", async () => {
  const sbin = await fakes({ "nats-server": "exit 0", ip: "exit 0" });
  const empty = await emptySbin();
  try {
    const r = await runSetup({ PATH: empty, SCMOE_SETUP_UID: "1000", SCMOE_SETUP_SBIN: sbin });
    equal(r.code, 1);
    equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
    equal(
      r.stderr,
      `test setup: ${sbin}/nats-server and ${sbin}/ip installed but not on PATH; ` +
        `run: export PATH="$PATH:${sbin}"\n`,
    );
  } finally {
    await Deno.remove(sbin, { recursive: true });
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("test setup: missing as root, it installs the missing packages with apt-get", async () => {
  // A fake apt-get that logs its calls and its DEBIAN_FRONTEND, and "installs" nats-server.
  const dir = await fakes({
    ip: "exit 0",
    openssl: "exit 0",
    "apt-get": [
      'echo "$DEBIAN_FRONTEND $*" >> "$here/apt.log"',
      'case "$1" in install) /bin/cp "$here/ip" "$here/nats-server";; esac',
    ].join("\n"),
  });
  const sbin = await emptySbin();
  try {
    const r = await runSetup({ PATH: dir, SCMOE_SETUP_UID: "0", SCMOE_SETUP_SBIN: sbin });
    equal(r.code, 0, r.stderr);
    equal(r.stderr, "test setup: installing nats-server with apt-get\n");
    deepEqual((await Deno.readTextFile(`${dir}/apt.log`)).trim().split("\n"), [
      "noninteractive update -qq",
      "noninteractive install -y -qq nats-server",
    ]);
    equal(findOnPath("nats-server", dir), `${dir}/nats-server`);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(sbin, { recursive: true });
  }
});

Deno.test("test setup: root, apt-get failing or absent, one line, exit 1", async () => {
  const dir = await fakes({ "apt-get": 'echo "E: Unable to locate package" >&2; exit 100' });
  const sbin = await emptySbin();
  try {
    const failing = await runSetup({ PATH: dir, SCMOE_SETUP_UID: "0", SCMOE_SETUP_SBIN: sbin });
    equal(failing.code, 1);
    equal(
      failing.stderr.split("\n").filter((l) => l !== "").pop(),
      "test setup: apt-get could not install nats-server iproute2 openssl: E: Unable to locate package",
    );
    const absent = await runSetup({ PATH: sbin, SCMOE_SETUP_UID: "0", SCMOE_SETUP_SBIN: sbin });
    equal(absent.code, 1);
    equal(absent.stderr.trimEnd().split("\n").length, 1, absent.stderr);
    match(absent.stderr, /no apt-get to install them/);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(sbin, { recursive: true });
  }
});

Deno.test("test setup: the install command", () => {
  equal(
    installCommand(NEEDS, true),
    "apt-get update && apt-get install -y nats-server iproute2 openssl",
  );
  equal(
    installCommand(NEEDS.slice(1, 2), false),
    "sudo apt-get update && sudo apt-get install -y iproute2",
  );
});
