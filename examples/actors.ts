/**
 * Your own actor classes, from your own module: word counts on three
 * actors, with futures, `wait` and a named actor.
 *
 * ```sh
 * deno run -A examples/actors.ts                      # actors as Workers
 * deno run -A examples/actors.ts --cluster nats       # actors as processes, private nats-server
 * deno run -A examples/actors.ts --cluster nats://10.0.0.1:4222   # on host agents
 * ```
 *
 * It prints one line per text as its count arrives, then `total N words`.
 * The classes below run inside the actors: each actor imports this module
 * by its URL (allowed: it lies in the folder of the script that called
 * `init`), so the driver's code sits under `import.meta.main`.
 *
 * @module
 */
import { get, getActor, init, remote, shutdown, wait } from "@scmoe/actors";

/** Keeps the running total; registered as the named actor "tally". */
export class Tally {
  #words = 0;

  /** Adds `n` words; returns the total so far. */
  add(n: number): number {
    this.#words += n;
    return this.#words;
  }

  /** The total so far. */
  total(): number {
    return this.#words;
  }
}

/** Counts the words of a text and reports them to the actor named "tally". */
export class WordCounter {
  /** Counts the words of `text`, adds them to the tally, and returns the count. */
  async count(text: string): Promise<number> {
    const words = text.split(/\s+/).filter((w) => w !== "").length;
    const tally = await getActor<Tally>("tally"); // found by name, from inside an actor
    await tally.add(words);
    return words;
  }
}

const TEXTS = [
  "The jury said it did find that the city's election was conducted.",
  "Actors are objects that live elsewhere and answer calls in order.",
  "Every call returns a future at once.",
  "A named actor can be found from anywhere in the job.",
  "The last text is short.",
];

if (import.meta.main) {
  const i = Deno.args.indexOf("--cluster");
  await init({ cluster: i >= 0 ? Deno.args[i + 1] : "local" });
  try {
    const Counter = remote<typeof WordCounter>(import.meta.url, "WordCounter");
    const TallyActor = remote<typeof Tally>(import.meta.url, "Tally");
    const tally = await TallyActor.options({ name: "tally" }).remote();
    const counters = await Promise.all([0, 1, 2].map(() => Counter.remote()));
    // One call per text, round-robin over the counters; each returns a future (ObjectRef) at once.
    let pending = TEXTS.map((text, k) => counters[k % counters.length].count(text));
    const byRef = new Map(pending.map((ref, k) => [ref, TEXTS[k]]));
    while (pending.length > 0) {
      const { ready, pending: rest } = await wait(pending, { numReturns: 1 });
      for (const ref of ready) {
        console.log(`${await get(ref)} words: ${byRef.get(ref)!.slice(0, 40)}`);
      }
      pending = rest;
    }
    console.log(`total ${await get(tally.total())} words`);
  } finally {
    await shutdown();
  }
}
