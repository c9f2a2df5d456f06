/**
 * A Worker inside each actor process that publishes heartbeats to the driver
 * from its own thread and NATS connection, so that long synchronous compute
 * on the actor's main thread does not look like death.
 *
 * @module
 */
import { connectNats, type NatsCredentials, nodeSubject } from "./bus_nats.ts";
import { Chunker, encode } from "./codec.ts";

/** What the heartbeat Worker is told at start. */
export interface HeartbeatConfig {
  creds: NatsCredentials;
  jobId: string;
  actorId: string;
  incarnation: number;
  intervalMs: number;
}

self.addEventListener("message", async (e: Event) => {
  const cfg = (e as MessageEvent<HeartbeatConfig>).data;
  const nc = await connectNats(cfg.creds, `scmoe-${cfg.jobId}-${cfg.actorId}-hb`);
  const [frame] = new Chunker(1 << 16).frames(
    encode({ type: "heartbeat", actorId: cfg.actorId, incarnation: cfg.incarnation }),
  );
  const subject = nodeSubject(cfg.jobId, "driver");
  const beat = () => {
    if (!nc.isClosed()) nc.publish(subject, frame);
  };
  beat();
  setInterval(beat, cfg.intervalMs);
}, { once: true });
