/**
 * The in-process bus: the driver's thread is the hub, each actor is a Worker.
 * Messages are structured-cloned; listed transferables move without a copy.
 *
 * @module
 */
import { type Bus, isMessage } from "./bus.ts";
import type { Message } from "./protocol.ts";

interface Envelope {
  to: string;
  msg: Message;
}

/** The driver's end: routes between the driver and the actor Workers. */
export class HubBus implements Bus {
  readonly address = "driver";
  rejectedFrames = 0;
  readonly #workers = new Map<string, Worker>();
  #handler: (msg: Message) => void = () => {};

  /** Attaches an actor Worker under its address; its outgoing messages are routed. */
  attach(address: string, worker: Worker): void {
    this.#workers.set(address, worker);
    worker.addEventListener("message", (e: MessageEvent<Envelope>) => {
      const env = e.data;
      if (typeof env !== "object" || env === null || !isMessage(env.msg)) {
        this.rejectedFrames++;
        return;
      }
      this.#route(env.to, env.msg, []);
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
    this.#workers.get(to)?.postMessage({ to, msg } satisfies Envelope, transfer);
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

  /** Builds the bus of the Worker whose address is `address`. */
  constructor(readonly address: string) {}

  /** Sends via the hub. */
  send(to: string, msg: Message, transfer: Transferable[] = []): void {
    (self as unknown as Worker).postMessage({ to, msg } satisfies Envelope, transfer);
  }

  /** Installs the handler of messages the hub routes here. */
  onMessage(handler: (msg: Message) => void): void {
    self.addEventListener("message", (e: Event) => {
      const env = (e as MessageEvent<Envelope>).data;
      if (typeof env !== "object" || env === null || !isMessage(env.msg)) {
        this.rejectedFrames++;
        return;
      }
      handler(env.msg);
    });
  }

  /** Nothing to disconnect. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
