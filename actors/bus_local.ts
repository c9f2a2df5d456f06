/**
 * The in-process bus: the driver's thread is the hub, each actor is a Worker.
 * Messages are structured-cloned; listed transferables move without a copy.
 * Messages sent in one turn of the event loop to one Worker travel as one
 * batch, which keeps the per-message cost of `postMessage` off the hot path.
 *
 * @module
 */
import { type Bus, isMessage } from "./bus.ts";
import type { Message } from "./protocol.ts";

interface Envelope {
  to: string;
  msg: Message;
}

/** Collects envelopes per destination and posts each batch once per turn. */
class Outbox {
  readonly #batches = new Map<
    { postMessage: Worker["postMessage"] },
    { envs: Envelope[]; transfer: Transferable[] }
  >();

  /** Queues `env` for `port`, flushing at the end of this turn. */
  push(
    port: { postMessage: Worker["postMessage"] },
    env: Envelope,
    transfer: Transferable[],
  ): void {
    let batch = this.#batches.get(port);
    if (!batch) {
      batch = { envs: [], transfer: [] };
      this.#batches.set(port, batch);
      queueMicrotask(() => {
        this.#batches.delete(port);
        port.postMessage(batch!.envs, batch!.transfer);
      });
    }
    batch.envs.push(env);
    batch.transfer.push(...transfer);
  }
}

/** Unpacks a received batch, counting what is not a valid envelope. */
function unpack(data: unknown, onEnvelope: (env: Envelope) => void): number {
  if (!Array.isArray(data)) return 1;
  let rejected = 0;
  for (const env of data) {
    if (
      typeof env === "object" && env !== null && typeof env.to === "string" && isMessage(env.msg)
    ) {
      onEnvelope(env);
    } else rejected++;
  }
  return rejected;
}

/** The driver's end: routes between the driver and the actor Workers. */
export class HubBus implements Bus {
  readonly address = "driver";
  rejectedFrames = 0;
  readonly #workers = new Map<string, Worker>();
  readonly #outbox = new Outbox();
  #handler: (msg: Message) => void = () => {};

  /** Attaches an actor Worker under its address; its outgoing messages are routed. */
  attach(address: string, worker: Worker): void {
    this.#workers.set(address, worker);
    worker.addEventListener("message", (e: MessageEvent) => {
      this.rejectedFrames += unpack(e.data, (env) => this.#route(env.to, env.msg, []));
    });
  }

  /** Forgets an actor Worker (after it died or was killed). */
  detach(address: string, worker: Worker): void {
    if (this.#workers.get(address) === worker) this.#workers.delete(address);
  }

  /** Sends from the driver. */
  send(to: string, msg: Message, transfer: Transferable[] = []): void {
    this.#route(to, msg, transfer);
  }

  #route(to: string, msg: Message, transfer: Transferable[]): void {
    if (to === this.address) {
      queueMicrotask(() => this.#handler(msg));
      return;
    }
    const worker = this.#workers.get(to);
    if (worker) this.#outbox.push(worker, { to, msg }, transfer);
  }

  /** Installs the driver's handler. */
  onMessage(handler: (msg: Message) => void): void {
    this.#handler = handler;
  }

  /** Nothing to disconnect: Workers are terminated by the runtime. */
  close(): Promise<void> {
    this.#workers.clear();
    return Promise.resolve();
  }
}

/** An actor Worker's end: everything goes through the driver's hub. */
export class WorkerBus implements Bus {
  rejectedFrames = 0;
  readonly #outbox = new Outbox();

  /** Builds the bus of the Worker whose address is `address`. */
  constructor(readonly address: string) {}

  /** Sends via the hub. */
  send(to: string, msg: Message, transfer: Transferable[] = []): void {
    this.#outbox.push(self as unknown as Worker, { to, msg }, transfer);
  }

  /** Installs the handler of messages the hub routes here. */
  onMessage(handler: (msg: Message) => void): void {
    self.addEventListener("message", (e: Event) => {
      this.rejectedFrames += unpack((e as MessageEvent).data, (env) => handler(env.msg));
    });
  }

  /** Nothing to disconnect. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
