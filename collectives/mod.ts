/**
 * Collectives for expert parallelism: all-to-all, all-reduce and friends
 * that return futures, over in-memory, `local` (Workers) and `nats`
 * transports, run on a communication thread.
 *
 * @example
 * ```ts
 * import { createMemoryGroup } from "./mod.ts";
 * const group = createMemoryGroup(2);
 * const out = await Promise.all(group.map((c) => c.alltoallv([Int32Array.of(c.rank), Int32Array.of(c.rank)])));
 * out[1][0][0]; // 0: rank 1's part from rank 0
 * ```
 *
 * @module
 */

export * from "./types.ts";
export * from "./errors.ts";
export { createCommunicator } from "./comm.ts";
export { createMemoryGroup, type MemoryGroupOptions } from "./memory.ts";
export { meshPorts } from "./local.ts";
export type { NatsCredentials } from "./nats_connect.ts";
