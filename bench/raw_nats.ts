/**
 * A reference for the `nats` all-to-all in `bench collectives`: the same
 * exchange on bare nats.js connections, one per rank on its own Worker as
 * the transport's are, cut into the same chunks, with none of the
 * transport's framing, rendezvous, flow control or collective engine. The
 * ratio of the two is what this project's layers cost over the client.
 *
 * @module
 */

/** Messages to a raw rank's Worker. */
export type RawNatsRequest =
  | { type: "init"; url: string; rank: number; subjects: string[] }
  | { type: "exchange"; bytesPerPeer: number }
  | { type: "close" };

/** Replies of a raw rank's Worker. */
export type RawNatsReply =
  | { type: "ready" | "closed" }
  | { type: "done"; receivedBytes: number }
  | { type: "error"; message: string };

/** One exchange of a {@linkcode RawNatsGroup}. */
export interface RawExchange {
  /** Wall time from the request to the last rank's completion. */
  ms: number;
  /** Per rank, the bytes it has received since the group started. */
  receivedBytes: number[];
}

/** A group of raw ranks; see the module doc. */
export interface RawNatsGroup {
  /** One all-to-all of `bytesPerPeer` from every rank to every other. */
  alltoall(bytesPerPeer: number): Promise<RawExchange>;
  /** Closes the connections and ends the Workers. */
  close(): Promise<void>;
}

/** Starts `ranks` raw ranks on the nats-server at `url`. */
export async function startRawNatsGroup(url: string, ranks: number): Promise<RawNatsGroup> {
  const prefix = `raw.${crypto.randomUUID()}`;
  const subjects = Array.from({ length: ranks }, (_, r) => `${prefix}.${r}`);
  const workers = subjects.map(() =>
    new Worker(new URL("./raw_nats_worker.ts", import.meta.url), { type: "module" })
  );
  const ask = (w: Worker, m: RawNatsRequest) =>
    new Promise<RawNatsReply>((resolve, reject) => {
      w.onmessage = (e: MessageEvent<RawNatsReply>) =>
        e.data.type === "error"
          ? reject(new Error(`raw nats rank: ${e.data.message}`))
          : resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`raw nats rank: ${e.message}`));
      };
      w.postMessage(m);
    });
  try {
    await Promise.all(workers.map((w, rank) => ask(w, { type: "init", url, rank, subjects })));
  } catch (err) {
    for (const w of workers) w.terminate();
    throw err;
  }
  return {
    async alltoall(bytesPerPeer) {
      const t0 = performance.now();
      const replies = await Promise.all(
        workers.map((w) => ask(w, { type: "exchange", bytesPerPeer })),
      );
      const ms = performance.now() - t0;
      return { ms, receivedBytes: replies.map((r) => r.type === "done" ? r.receivedBytes : NaN) };
    },
    async close() {
      await Promise.allSettled(workers.map((w) => ask(w, { type: "close" })));
      for (const w of workers) w.terminate();
    },
  };
}
