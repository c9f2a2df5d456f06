/**
 * The V8 heap flag (`collectives/v8_flags.ts`): the `deno task` entries that
 * start the runtime pass it, and with it the communication Workers of a
 * `local` group no longer run a mark-compact on most all-to-alls as the
 * sizes grow to 8 MiB per peer, as they do with V8's default.
 */
import assert from "node:assert/strict";
import { V8_HEAP_FLAG } from "../collectives/v8_flags.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const LOOP = new URL("./helpers/local_alltoall_loop.ts", import.meta.url).pathname;

/** Mark-compacts V8 reports over all isolates of one run of the all-to-all loop. */
async function markCompacts(flags: string[]): Promise<number> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...flags,
      LOOP,
      "30",
      ...[1 << 10, 16 << 10, 256 << 10, 2 << 20, 8 << 20].map(String),
    ],
    env: { DENO_V8_FLAGS: "--trace-gc" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  // Trace lines are written in pieces, so "done" may land inside one.
  assert.match(out, /done/);
  return out.split("\n").filter((l) => l.includes("Mark-Compact")).length;
}

Deno.test("v8 flags: the tasks that start the runtime pass the heap flag", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  for (const task of ["train", "generate", "bench", "agent", "test"]) {
    assert.ok(tasks[task].includes(` ${V8_HEAP_FLAG} `), `task ${task}: ${tasks[task]}`);
  }
});

Deno.test("v8 flags: local all-to-alls up to 8 MiB per peer collect on most calls with V8's default heap, not with the flag", async () => {
  const [withDefault, withFlag] = [await markCompacts([]), await markCompacts([V8_HEAP_FLAG])];
  assert.ok(withDefault >= 20, `default heap: ${withDefault} mark-compacts in 150 calls`);
  assert.ok(withFlag <= 3, `${V8_HEAP_FLAG}: ${withFlag} mark-compacts in 150 calls`);
});
