/**
 * Entry point of an actor Worker of the `local` cluster. Its address, the
 * module it was started for and its module roots come in the Worker's name
 * (JSON, see `WorkerPlacer`), set by the driver at construction and never
 * taken from the bus.
 *
 * @module
 */
import { WorkerBus } from "./bus_local.ts";
import { ActorHost } from "./host.ts";
import type { ModuleGrant } from "./module_roots.ts";

const { address, moduleUrl, moduleRoots } = JSON.parse(
  (self as unknown as { name: string }).name,
) as { address: string } & ModuleGrant;
new ActorHost(new WorkerBus(address), address, () => self.close(), { moduleUrl, moduleRoots });
