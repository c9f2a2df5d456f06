/**
 * A Ray-style actor framework for expert-parallel Mixture-of-Experts
 * training in Deno, with the shortcut-connected MoE architectures (ScMoE,
 * DGMoE) that hide expert-parallel all-to-all communication behind compute.
 *
 * @example
 * ```ts ignore
 * import { get, init, remote, shutdown } from "./mod.ts";
 * import type { Counter } from "./tests/fixtures/actors.ts";
 *
 * await init({ cluster: "local" }); // or "nats", or "nats://host:4222"
 * const CounterActor = remote<typeof Counter>(new URL("./tests/fixtures/actors.ts", import.meta.url), "Counter");
 * const c = await CounterActor.remote(10);
 * console.log(await get([c.add(1), c.add(2)])); // [11, 13]
 * await shutdown();
 * ```
 *
 * @module
 */
export * from "./actors/mod.ts";
export * from "./collectives/mod.ts";
export * from "./models/mod.ts";
export * from "./training/mod.ts";
export { type Tensor, tf, type Variable } from "./models/tf.ts";
