/**
 * Process helpers for tests.
 *
 * @module
 */

/** True while a process with this pid exists (signal 0-like probe with SIGCONT). */
export function processAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}
