/**
 * The collective groups an actor was made a member of. The driver sends each
 * member its part of the group's spec; the actor joins with `joinGroup`.
 *
 * @module
 */
import { createCommunicator } from "../collectives/mod.ts";
import type { CommStats, Communicator, GroupSpec } from "../collectives/types.ts";
import { RuntimeStateError } from "./errors.ts";

/** A joined group's communicator, with its transport's counters (e.g. frames dropped). */
export type GroupCommunicator = Communicator & { stats(): Promise<CommStats> };

interface GroupEntry {
  members: string[];
  spec?: GroupSpec;
  comm?: Promise<GroupCommunicator>;
  specWaiters: ((spec: GroupSpec) => void)[];
}

/** Specs received, and communicators joined, on one actor host. */
export class GroupRegistry {
  readonly #groups = new Map<string, GroupEntry>();

  /** Builds the registry of actor `actorId`. */
  constructor(readonly actorId: string) {}

  #entry(groupId: string): GroupEntry {
    let e = this.#groups.get(groupId);
    if (!e) {
      e = { members: [], specWaiters: [] };
      this.#groups.set(groupId, e);
    }
    return e;
  }

  /** Records this member's spec of group `groupId` (sent by the driver). */
  add(groupId: string, members: string[], spec: Record<string, unknown>): void {
    const e = this.#entry(groupId);
    e.members = members;
    e.spec = spec as unknown as GroupSpec;
    for (const w of e.specWaiters.splice(0)) w(e.spec);
  }

  /** Joins group `groupId` (once; later calls return the same communicator). */
  join(groupId: string, timeoutMs = 30_000): Promise<GroupCommunicator> {
    const e = this.#entry(groupId);
    if (!e.comm) {
      e.comm = new Promise<GroupSpec>((resolve, reject) => {
        if (e.spec) return resolve(e.spec);
        const timer = setTimeout(
          () =>
            reject(
              new RuntimeStateError(`actor ${this.actorId} is not a member of group "${groupId}"`),
            ),
          timeoutMs,
        );
        e.specWaiters.push((spec) => {
          clearTimeout(timer);
          resolve(spec);
        });
      }).then((spec) => createCommunicator(spec));
      e.comm.catch(() => e.comm = undefined);
    }
    return e.comm;
  }

  /** Tells every joined group that contains `actorId` that this member died. */
  memberDied(actorId: string, reason: string): void {
    for (const e of this.#groups.values()) {
      const rank = e.members.indexOf(actorId);
      if (rank < 0 || !e.comm) continue;
      e.comm.then((c) => {
        try {
          c.markPeerDied(rank, reason);
        } catch {
          // A communicator the actor already closed has no calls left to fail.
        }
      }, () => {});
    }
  }

  /** Closes every joined communicator. */
  async closeAll(): Promise<void> {
    const comms = [...this.#groups.values()].map((e) => e.comm).filter((c) => c !== undefined);
    await Promise.all(comms.map((c) => c.then((x) => x.close(), () => {})));
  }
}
