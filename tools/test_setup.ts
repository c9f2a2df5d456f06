/**
 * The set-up step of `deno task test`: the tests need `nats-server` (the NATS
 * tests start private servers), `ip` from iproute2 (the network-namespace
 * tests) and `openssl` (a self-signed certificate for the https module test).
 * When all are on PATH this does nothing. When one is missing and
 * this runs as root, it installs the missing Debian packages with apt-get;
 * otherwise it stops with one line giving the command to run, and exit code 1.
 *
 * Debian installs both in /usr/sbin, which is not on a normal user's PATH: a
 * command found there but not on PATH is reported with the PATH to set.
 *
 * For tests: `SCMOE_SETUP_UID` stands in for the user id and `SCMOE_SETUP_SBIN`
 * for the sbin directories looked in (default `/usr/local/sbin:/usr/sbin:/sbin`).
 *
 * @module
 */

/** A command the tests need and the Debian package that provides it. */
export interface Need {
  /** Executable looked up on PATH. */
  command: string;
  /** Debian package that installs it. */
  pkg: string;
}

/** What the test suite needs on PATH. */
export const NEEDS: readonly Need[] = [
  { command: "nats-server", pkg: "nats-server" },
  { command: "ip", pkg: "iproute2" },
  { command: "openssl", pkg: "openssl" },
];

/** The first executable file named `command` in the directories of `path`, or null. */
export function findOnPath(command: string, path = Deno.env.get("PATH") ?? ""): string | null {
  for (const dir of path.split(":")) {
    if (dir === "") continue;
    const file = `${dir}/${command}`;
    try {
      const st = Deno.statSync(file);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) return file;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** The needs whose command is not on `path`. */
export function missing(path?: string): Need[] {
  return NEEDS.filter((n) => findOnPath(n.command, path) === null);
}

/** The shell command that installs `needs` (prefixed with sudo for a user other than root). */
export function installCommand(needs: readonly Need[], root: boolean): string {
  const sudo = root ? "" : "sudo ";
  return `${sudo}apt-get update && ${sudo}apt-get install -y ${needs.map((n) => n.pkg).join(" ")}`;
}

function describe(needs: readonly Need[]): string {
  const names = needs.map((n) => n.command === n.pkg ? n.command : `${n.command} (${n.pkg})`);
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names[0];
}

async function apt(aptGet: string, args: string[]): Promise<string | null> {
  const out = await new Deno.Command(aptGet, {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.success) return null;
  const text = new TextDecoder().decode(out.stderr).trim() ||
    new TextDecoder().decode(out.stdout).trim();
  return text.split("\n").filter((l) => l.trim() !== "").pop() ?? `exit code ${out.code}`;
}

/** Checks, installs when it can, and returns the exit code. */
export async function setup(): Promise<number> {
  const need = missing();
  if (need.length === 0) return 0;
  const uidText = Deno.env.get("SCMOE_SETUP_UID");
  const root = (uidText === undefined ? Deno.uid() : Number(uidText)) === 0;
  const fail = (why: string) => {
    console.error(`test setup: ${why}`);
    return 1;
  };
  const sbin = Deno.env.get("SCMOE_SETUP_SBIN") ?? "/usr/local/sbin:/usr/sbin:/sbin";
  const offPath = need.map((n) => findOnPath(n.command, sbin)).filter((f) => f !== null);
  if (offPath.length > 0) {
    const dirs = [...new Set(offPath.map((f) => f.slice(0, f.lastIndexOf("/"))))].join(":");
    return fail(
      `${offPath.join(" and ")} installed but not on PATH; run: export PATH="$PATH:${dirs}"`,
    );
  }
  if (!root) {
    return fail(`${describe(need)} not found on PATH; run: ${installCommand(need, false)}`);
  }
  const aptGet = findOnPath("apt-get");
  if (aptGet === null) {
    return fail(
      `${describe(need)} not found on PATH and no apt-get to install them; ` +
        `install the Debian packages ${need.map((n) => n.pkg).join(" ")} or their equivalents`,
    );
  }
  const pkgs = need.map((n) => n.pkg);
  console.error(`test setup: installing ${pkgs.join(" ")} with apt-get`);
  const failed = await apt(aptGet, ["update", "-qq"]) ??
    await apt(aptGet, ["install", "-y", "-qq", ...pkgs]);
  if (failed !== null) {
    return fail(`apt-get could not install ${pkgs.join(" ")}: ${failed}`);
  }
  const still = missing();
  if (still.length > 0) {
    return fail(`${describe(still)} still not found on PATH after apt-get installed it`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await setup());
