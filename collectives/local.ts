/**
 * The `local` transport: ranks are Workers of one process, joined pairwise by
 * MessagePorts. Array buffers are transferred, never copied.
 *
 * @module
 */

import { nowMs } from "./link.ts";
import { BaseTransport, type TransportOptions } from "./transport.ts";
import type { Elem } from "./types.ts";

/**
 * What travels on a port: tag, array, and the milliseconds until the frame
 * may be delivered, counted from its posting. Each Worker's clock has its
 * own origin (two were seen 1 to 4 ms apart), so the receiver counts the
 * wait from the frame's arrival on its own clock, not from a stamp of the
 * sender's; the port's own transit adds to it, as a real link's would.
 */
interface LocalFrame {
  t: string;
  d: Elem;
  r: number;
}

function isFrame(m: unknown): m is LocalFrame {
  const f = m as LocalFrame;
  return typeof f === "object" && f !== null && typeof f.t === "string" &&
    typeof f.r === "number" && (f.d instanceof Float32Array || f.d instanceof Int32Array);
}

/**
 * One rank's end of a `local` group.
 *
 * @example
 * ```ts
 * import { LocalTransport } from "./local.ts";
 * const { port1, port2 } = new MessageChannel();
 * const a = new LocalTransport(0, [null, port1]);
 * const b = new LocalTransport(1, [port2, null]);
 * await a.send(1, "t", Float32Array.of(1));
 * (await b.recv(0, "t"))[0]; // 1
 * await a.close();
 * await b.close();
 * ```
 */
export class LocalTransport extends BaseTransport {
  #ports: (MessagePort | null)[];

  /**
   * @param rank This rank.
   * @param ports `ports[j]` talks to rank j; `ports[rank]` is null.
   * @param opts Link model and jitter.
   */
  constructor(rank: number, ports: (MessagePort | null)[], opts: TransportOptions = {}) {
    super(rank, ports.length, opts);
    this.#ports = ports;
    ports.forEach((port, src) => {
      if (!port) return;
      port.onmessage = (e) => {
        if (isFrame(e.data)) this.arrive(src, e.data.t, e.data.d, nowMs() + e.data.r);
        else this.drop();
      };
      port.onmessageerror = () => this.drop();
    });
  }

  protected transmit(dst: number, tag: string, data: Elem, readyAt: number): Promise<void> {
    const port = this.#ports[dst];
    if (!port) return Promise.reject(new Error(`no port to rank ${dst}`));
    const frame: LocalFrame = { t: tag, d: data, r: readyAt - nowMs() };
    port.postMessage(frame, [data.buffer as ArrayBuffer]);
    return Promise.resolve();
  }

  /** Closes every port. */
  override async close(): Promise<void> {
    await super.close();
    for (const port of this.#ports) {
      if (!port) continue;
      port.onmessage = null;
      port.close();
    }
  }
}

/**
 * A full mesh of MessageChannels for a `local` group: `mesh[i][j]` is rank
 * i's port to rank j (`mesh[i][i]` is null). Give row i to rank i.
 *
 * @example
 * ```ts
 * import { meshPorts } from "./local.ts";
 * const mesh = meshPorts(3);
 * mesh[0][0]; // null
 * ```
 */
export function meshPorts(size: number): (MessagePort | null)[][] {
  const mesh = Array.from({ length: size }, () => new Array<MessagePort | null>(size).fill(null));
  for (let i = 0; i < size; i++) {
    for (let j = i + 1; j < size; j++) {
      const { port1, port2 } = new MessageChannel();
      mesh[i][j] = port1;
      mesh[j][i] = port2;
    }
  }
  return mesh;
}
