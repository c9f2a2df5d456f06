/**
 * Malformed frames for fuzzing a running job from an independent NATS
 * client: on the control subjects of the driver and the actors
 * (`scmoe.<job>.<address>`) and on the data subjects of a collective group
 * (`subjectOf(job, group, rank)`). Every frame made here must be rejected
 * and counted by its receiver: truncated headers, wrong sizes, wrong types,
 * huge lengths, other job and group ids, out-of-range ranks. (Well-formed
 * frames that impersonate a real member are out of scope: NATS credentials,
 * and subject permissions where needed, are what keeps strangers out.)
 *
 * @module
 */
import { encode } from "../actors/codec.ts";
import { jobId, natsCredentials } from "../actors/mod.ts";
import { connectNats, type NatsCredentials } from "../actors/bus_nats.ts";
import { subjectOf } from "../collectives/nats.ts";
import { FRAME_HEADER } from "../collectives/frame.ts";
import { headers, type MsgHdrs } from "@nats-io/transport-node";

/** Where a fuzz run publishes. */
export interface FuzzTarget {
  /** Credentials of the job's NATS (an insider's: the fuzzer gets through auth). */
  creds: NatsCredentials;
  /** The job id (see `jobId()`). */
  jobId: string;
  /** Actor ids of the job's actors. */
  actors: string[];
  /** The collective group and its size. */
  groupId: string;
  size: number;
}

/** The fuzz target of the running job and its rank group (credentials of the driver). */
export function jobFuzzTarget(
  group: { handles: readonly { actorId: string }[]; groupId: string; size: number },
): FuzzTarget {
  return {
    creds: natsCredentials(),
    jobId: jobId(),
    actors: group.handles.map((h) => h.actorId),
    groupId: group.groupId,
    size: group.size,
  };
}

/** Frames published, by receiver. */
export interface FuzzCounts {
  /** On the driver's control subject. */
  driver: number;
  /** On the actors' control subjects. */
  actors: number;
  /** On the group's data subjects (every rank's together). */
  data: number;
  /** On subjects of another job (no receiver). */
  otherJob: number;
}

const BYTE = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** A control-plane frame (actors/codec.ts framing) that must be rejected; `i` picks the kind. */
export function controlFrame(i: number, jobId: string): Uint8Array {
  const kinds = [
    () => new Uint8Array(0), // empty
    () => Uint8Array.of(7, ...BYTE(i % 50)), // unknown frame kind
    () => Uint8Array.of(1, 0, 0, 0, ...BYTE(i % 15)), // truncated chunk header
    () => chunkHeader(0, 0xffffffff), // a huge chunk count
    () => chunkHeader(5, 3), // index past the count
    () => Uint8Array.of(0, ...encode({ type: "result", callId: i, ok: "yes" })), // wrong types
    () => Uint8Array.of(0, ...encode({ type: "heartbeat", actorId: 42, incarnation: "x" })),
    () => Uint8Array.of(0, ...encode({ type: `no-such-type-${i}`, jobId: `other${jobId}` })),
    () => Uint8Array.of(0, ...encode([i, "list", null])), // not an object
    () => Uint8Array.of(0, 0xc1, ...BYTE(i % 40)), // 0xc1: never valid msgpack
  ];
  return kinds[i % kinds.length]();
}

function chunkHeader(index: number, count: number): Uint8Array {
  const f = new Uint8Array(24);
  const v = new DataView(f.buffer);
  f[0] = 1;
  v.setUint32(4, 1, true);
  v.setUint32(8, 2, true);
  v.setUint32(12, index, true);
  v.setUint32(16, count, true);
  return f;
}

/** A data-plane message: NATS headers (if any) and a body. */
export interface DataMessage {
  headers?: MsgHdrs;
  data: Uint8Array;
}

/** A data-plane frame (collectives/frame.ts framing) that must be dropped; `i` picks the kind. */
export function dataFrame(i: number, jobId: string, groupId: string, size: number): DataMessage {
  const kinds = [
    () => ({ data: BYTE(i % 40) }), // no NATS headers: no frame header
    () => ({ headers: headerOf("Other-Header", "x"), data: BYTE(16) }), // other headers only
    () => withHeader(`{"k":0,"j":${BYTE(6).join(",")}`), // header not JSON
    () => withHeader(JSON.stringify("a string, not a header")), // wrong type
    () => withHeader(JSON.stringify({ k: 0, j: jobId, g: groupId, s: "0", t: "x" })), // field types
    () => withHeader(JSON.stringify({ k: 9, j: jobId, g: groupId, s: 0 })), // unknown kind
    () => withHeader(JSON.stringify(data(jobId, groupId, 0, { n: 6 }))), // size not a multiple of 4
    () => withHeader(JSON.stringify(data(`other${jobId}`, groupId, 0, { n: 2 ** 40 }))), // other job
    () => withHeader(JSON.stringify(data(jobId, `other-${groupId}`, 0, { n: 2 ** 40 }))), // group
    () => withHeader(JSON.stringify(data(jobId, groupId, size + (i % 7), { n: 2 ** 40 }))), // rank
  ];
  return kinds[i % kinds.length]();
}

function data(j: string, g: string, s: number, o: { n: number }) {
  return { k: 0, j, g, s, t: "fuzz", d: 0, n: o.n, o: 0, r: 0 };
}

function headerOf(key: string, value: string): MsgHdrs {
  const h = headers();
  h.set(key, value);
  return h;
}

/** `text` as the frame header, plus a little payload. */
function withHeader(text: string): DataMessage {
  return { headers: headerOf(FRAME_HEADER, text), data: BYTE(16) };
}

/**
 * Publishes `total` malformed frames over the job's subjects from a client
 * of its own, yielding to the event loop every `batch` frames (so a driver in
 * the same process keeps training); resolves once the server has them all.
 */
export async function publishFuzz(
  target: FuzzTarget,
  total: number,
  batch = 250,
): Promise<FuzzCounts> {
  const nc = await connectNats(target.creds, "scmoe-fuzzer");
  const counts: FuzzCounts = { driver: 0, actors: 0, data: 0, otherJob: 0 };
  const { jobId, actors, groupId, size } = target;
  try {
    for (let i = 0; i < total; i++) {
      const r = i % 20;
      if (r < 6) {
        nc.publish(`scmoe.${jobId}.driver`, controlFrame(i, jobId));
        counts.driver++;
      } else if (r < 11) {
        nc.publish(`scmoe.${jobId}.${actors[i % actors.length]}`, controlFrame(i, jobId));
        counts.actors++;
      } else if (r < 19) {
        const m = dataFrame(i, jobId, groupId, size);
        nc.publish(subjectOf(jobId, groupId, i % size), m.data, { headers: m.headers });
        counts.data++;
      } else {
        nc.publish(`scmoe.other${jobId}.driver`, controlFrame(i, jobId));
        counts.otherJob++;
      }
      if (i % batch === batch - 1) await nc.flush();
    }
    await nc.flush();
  } finally {
    await nc.close();
  }
  return counts;
}
