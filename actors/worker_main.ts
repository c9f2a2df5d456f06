/**
 * Entry point of an actor Worker of the `local` cluster. Its address comes
 * in the Worker's name.
 *
 * @module
 */
import { WorkerBus } from "./bus_local.ts";
import { ActorHost } from "./host.ts";

const address = (self as unknown as { name: string }).name;
new ActorHost(new WorkerBus(address), address, () => self.close());
