/**
 * Which modules an actor may be built from: its module roots.
 *
 * No code travels over the wire: an actor's Worker or process imports the
 * module named by `remote(moduleUrl, exportName)` itself. What it may import
 * is decided by three parties, none of which takes the bus's word for it:
 *
 * - The driver allows the modules under its roots: the package's own root
 *   (the folder above `actors/`, a `file:` folder in a checkout or an
 *   `https:` one when installed from JSR), the folder of `Deno.mainModule`,
 *   and the folders given as `init({ moduleRoots })`. `remote(...).remote()`
 *   of a module outside them throws {@linkcode ModuleNotAllowedError} before
 *   anything is spawned.
 * - A host agent allows the modules under its own roots: the package root and
 *   the folders given with `deno task agent --allow-module-root PATH_OR_URL`
 *   (or `Agent.start(creds, { moduleRoots })`; the private `nats` cluster's
 *   agent takes the driver's roots). A spawn request is authenticated only by
 *   the NATS credentials, which every node of every job on that server holds,
 *   so anyone with them can ask any agent to spawn anything: the agent's own
 *   list, not the driver's, is what makes a forged spawn request harmless.
 *   It refuses a module outside it, naming `--allow-module-root`.
 * - The actor host (`host.ts`) is told at its start, by whoever started it
 *   and not over the bus, the one module it was spawned for and the roots:
 *   a Worker in its name (from `WorkerPlacer`), a process on its command line
 *   (`--module=URL --module-root=URL…`, from its agent). It accepts a
 *   "create" message only for that module, under those roots, and only
 *   once; any other is refused before `import()` (so nothing is fetched),
 *   answered with `create-failed` and counted by the driver
 *   (`runtimeStats().refusedCreates`).
 *
 * A root is a folder URL ending in "/"; a plain path is resolved against the
 * current directory to a `file:` URL. Only `file:` and `https:` roots and
 * modules are accepted.
 *
 * @module
 */
import { fileURLToPath, pathToFileURL } from "node:url";

/** The package's own root: the folder above `actors/` (`file:` in a checkout, `https:` from JSR). */
export const PACKAGE_ROOT: string = new URL("../", import.meta.url).href;

const PROTOCOLS = new Set(["file:", "https:"]);

/**
 * The module root `root` as a folder URL ending in "/". A `URL`, or a string
 * with a scheme, is taken as a URL; any other string is a path, resolved
 * against the current directory. Throws a TypeError unless it is `file:` or
 * `https:`.
 */
export function toModuleRoot(root: string | URL): string {
  let url: URL;
  if (root instanceof URL) url = new URL(root.href);
  else if (typeof root !== "string" || root === "") {
    throw new TypeError(`module root must be a path or a URL, got ${JSON.stringify(root)}`);
  } else if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(root)) {
    try {
      url = new URL(root);
    } catch {
      throw new TypeError(`module root is not a URL: ${JSON.stringify(root)}`);
    }
  } else url = pathToFileURL(root);
  if (!PROTOCOLS.has(url.protocol)) {
    throw new TypeError(
      `module root ${url.href} has protocol ${url.protocol}: only file: and https: roots are accepted`,
    );
  }
  url.search = "";
  url.hash = "";
  return url.href.endsWith("/") ? url.href : `${url.href}/`;
}

/** `roots` normalized by {@linkcode toModuleRoot}, without repeats, in order. */
export function toModuleRoots(roots: Iterable<string | URL>): string[] {
  return [...new Set([...roots].map(toModuleRoot))];
}

/**
 * `moduleUrl` parsed and normalized (".." resolved). Throws a TypeError when
 * it is not a URL, not `file:` or `https:`, or hides a "/" or "\" in an
 * escape (`%2F`, `%5C`), which a file path would read as a folder.
 */
export function checkModuleUrl(moduleUrl: string): string {
  let url: URL;
  try {
    url = new URL(moduleUrl);
  } catch {
    throw new TypeError(`actor module URL is not a URL: ${JSON.stringify(moduleUrl)}`);
  }
  if (!PROTOCOLS.has(url.protocol)) {
    throw new TypeError(
      `actor module ${url.href} has protocol ${url.protocol}: only file: and https: modules are accepted`,
    );
  }
  if (/%(2f|5c)/i.test(url.pathname)) {
    throw new TypeError(`actor module ${url.href} has an escaped "/" or "\\" in its path`);
  }
  return url.href;
}

/** True when `moduleUrl` is a valid module URL (see {@linkcode checkModuleUrl}) under one of `roots`. */
export function isUnderRoots(moduleUrl: string, roots: readonly string[]): boolean {
  let href: string;
  try {
    href = checkModuleUrl(moduleUrl);
  } catch {
    return false;
  }
  return roots.some((root) => href.startsWith(root));
}

/** The folder of `moduleUrl` as one would allow it: a path for `file:`, else the folder URL. */
export function folderOf(moduleUrl: string): string {
  try {
    const folder = new URL("./", moduleUrl);
    return folder.protocol === "file:" ? fileURLToPath(folder) : folder.href;
  } catch {
    return moduleUrl;
  }
}

/** The folder of `Deno.mainModule` as a root, when it is a `file:` or `https:` URL. */
export function mainModuleRoot(): string | undefined {
  try {
    return toModuleRoot(new URL("./", Deno.mainModule));
  } catch {
    return undefined;
  }
}

/**
 * What an actor host was started for, told by whoever started it (never over
 * the bus): the one module it may build its actor from, and the roots that
 * module must lie under.
 */
export interface ModuleGrant {
  /** The module the actor's "create" must name. */
  moduleUrl: string;
  /** Folder URLs ending in "/" (see {@linkcode toModuleRoot}). */
  moduleRoots: string[];
}
