/**
 * The V8 flag every Deno process of this project is started with (the
 * `deno task` entries and each process the runtime or a benchmark spawns).
 *
 * V8 counts the array buffers an isolate holds against its global heap
 * limit. After a collection that limit is set from what the isolate held at
 * that moment (plus at most 10%), and on a small JavaScript heap it is 20–40
 * MB. Buffers handed from isolate to isolate by transfer, as collectives do,
 * come and go in bursts, so the limit kept being set in a trough and crossed
 * at the next burst. A `local` all-to-all of 8 MiB per peer moves 56 MiB
 * through each rank's communication Worker, and with V8's default most calls
 * started a mark-compact in some Worker: 44–93 incremental markings in
 * 200–240 calls of 4 ranks growing from 4 KiB to 32 MiB per rank, and
 * 1.2–5.3 ms medians at 32 MiB, against 0 markings and 0.6–1.0 ms with this
 * flag. A 128 MB
 * initial heap puts the global limit's floor at about 230 MB, above the
 * 128 MiB one isolate holds when it runs 4 such ranks (64 MB was not: one
 * collection per call there). V8 still commits memory only as it is used.
 *
 * @module
 */

/** `deno run` flag that gives each isolate a 128 MB initial heap (see the module doc). */
export const V8_HEAP_FLAG = "--v8-flags=--initial-heap-size=128";
