/**
 * Which code a run used: the package's name and version, and the git commit
 * of its checkout when it runs from one (with `+dirty` for uncommitted
 * changes), so a run folder says what produced it.
 *
 * @module
 */
import meta from "../deno.json" with { type: "json" };

/** The package and, from a git checkout, its commit. */
export interface CodeVersion {
  /** Package name, e.g. `@scmoe/actors`. */
  name: string;
  /** Package version. */
  version: string;
  /** `git describe`-style commit of the checkout (null outside one, or without git). */
  commit: string | null;
}

/** The code version of this package (the commit is looked up once per process). */
export async function codeVersion(): Promise<CodeVersion> {
  commit ??= gitCommit();
  return { name: meta.name, version: meta.version, commit: await commit };
}

let commit: Promise<string | null> | undefined;

async function gitCommit(): Promise<string | null> {
  const root = new URL("../", import.meta.url);
  if (root.protocol !== "file:") return null;
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", {
      args: ["-C", root.pathname, ...args],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  };
  try {
    const head = await git("rev-parse", "--short=12", "HEAD");
    if (head === null) return null;
    const dirty = await git("status", "--porcelain", "--untracked-files=no");
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null; // no git on this machine
  }
}
