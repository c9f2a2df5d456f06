/**
 * Actor classes the runtime benchmark calls.
 *
 * @module
 */
import { getActor } from "../actors/mod.ts";

/** The smallest possible method, and an echo for payload round trips. */
export class Target {
  /** Returns its argument plus one. */
  ping(x: number): number {
    return x + 1;
  }
  /** Returns its argument. */
  echo<T>(x: T): T {
    return x;
  }
}

/** An actor that calls named targets from inside the job (for n:n calls). */
export class Hammer {
  /** Issues `calls` async calls round-robin over the named targets; returns milliseconds taken. */
  async run(targets: string[], calls: number): Promise<number> {
    const handles = await Promise.all(targets.map((t) => getActor<Target>(t)));
    const t0 = performance.now();
    const refs = [];
    for (let i = 0; i < calls; i++) refs.push(handles[i % handles.length].ping(i));
    await Promise.all(refs);
    return performance.now() - t0;
  }
}
