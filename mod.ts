/**
 * A Ray-style actor framework for expert-parallel Mixture-of-Experts
 * training in Deno, with the shortcut-connected MoE architectures (ScMoE,
 * DGMoE) of Cai et al., "Shortcut-connected Expert Parallelism for
 * Accelerating Mixture-of-Experts" (arXiv:2404.05019), which hide the
 * all-to-all communication of expert parallelism behind computation.
 *
 * Your own actor class, from your own module (here, this very file):
 *
 * @example
 * ```ts ignore
 * import { get, init, remote, shutdown } from "@scmoe/actors";
 *
 * export class Counter {
 *   #n = 0;
 *   add(k: number): number {
 *     return this.#n += k;
 *   }
 * }
 *
 * if (import.meta.main) {
 *   await init({ cluster: "local" }); // or "nats", or "nats://host:4222"
 *   const CounterActor = remote<typeof Counter>(import.meta.url, "Counter");
 *   const c = await CounterActor.options({ name: "c" }).remote();
 *   console.log(await get([c.add(1), c.add(2)])); // [1, 3]
 *   await shutdown();
 * }
 * ```
 *
 * Your own training script, on your own text file:
 *
 * @example
 * ```ts ignore
 * import { train } from "@scmoe/actors";
 * const run = await train({
 *   variant: "scmoe",
 *   pos: 2,
 *   data: { kind: "text", path: "my_corpus.txt" },
 *   ranks: 2,
 *   steps: 100,
 *   out: "runs/mine",
 * });
 * console.log(run.valLoss, run.checkpoint);
 * ```
 *
 * @module
 */
export * from "./actors/mod.ts";
export * from "./collectives/mod.ts";
export * from "./models/mod.ts";
export * from "./training/mod.ts";
export { type Tensor, tf, type Variable } from "./models/tf.ts";
