/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The communication thread: owns the transport of one rank and runs the
 * collective algorithms, so bytes move while the caller's thread computes.
 * Spoken to by {@linkcode createCommunicator} through the messages of
 * `comm_protocol.ts`.
 *
 * @module
 */

import { Engine } from "./engine.ts";
import { errorToWire } from "./errors.ts";
import { nowMs } from "./link.ts";
import { LocalTransport } from "./local.ts";
import { buffersOf, type ToComm } from "./comm_protocol.ts";
import type { Transport } from "./transport.ts";
import type { GroupSpec } from "./types.ts";

async function openTransport(spec: GroupSpec): Promise<Transport> {
  const opts = { link: spec.link, jitterMs: spec.jitterMs };
  if (spec.kind === "local") return new LocalTransport(spec.rank, spec.ports, opts);
  const { NatsTransport } = await import("./nats.ts");
  return await NatsTransport.connect(spec);
}

let engine: Engine | undefined;

self.onmessage = async (e: MessageEvent<ToComm>) => {
  const m = e.data;
  switch (m.type) {
    case "init":
      try {
        const t = await openTransport(m.spec);
        engine = new Engine(t, { groupId: m.spec.groupId, timeoutMs: m.spec.timeoutMs });
        self.postMessage({ type: "ready" });
      } catch (err) {
        self.postMessage({ type: "failed", error: errorToWire(err) });
      }
      return;
    case "call":
      try {
        const value = await (engine as any)[m.op](...m.args);
        self.postMessage({ type: "result", id: m.id, value, doneAt: nowMs() }, buffersOf(value));
      } catch (err) {
        self.postMessage({ type: "failed", id: m.id, error: errorToWire(err) });
      }
      return;
    case "clock":
      self.postMessage({ type: "clock", sentAt: m.sentAt, at: nowMs() });
      return;
    case "died":
      engine?.markPeerDied(m.rank, m.reason);
      return;
    case "close":
      await engine?.close();
      self.postMessage({ type: "closed" });
      self.close();
  }
};
