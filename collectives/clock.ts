/**
 * Clock offsets between threads and between ranks. Each Worker's `nowMs()`
 * starts from its own time origin (two Workers of one process were seen 1 to
 * 4 ms apart, as much as a hand-off or a short transfer), so times taken on
 * different threads or ranks compare only after one is moved onto the
 * other's clock. Of several round trips, the shortest gives the offset, its
 * error at most half of that round trip.
 *
 * @module
 */
import { nowMs } from "./link.ts";
import type { Communicator } from "./types.ts";

/** One round trip, as the side that started it saw it. */
export interface RoundTrip {
  /** When it was sent (this side's clock). */
  sentAt: number;
  /** The other side's time when it answered (its clock). */
  at: number;
  /** When the answer came back (this side's clock). */
  back: number;
}

/** The other side's clock less this one's, from the shortest of `rounds` calls of `ping`. */
export async function offsetOfShortestTrip(
  rounds: number,
  ping: () => Promise<RoundTrip>,
): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < rounds; i++) {
    const m = await ping();
    const rtt = m.back - m.sentAt;
    if (rtt < best.rtt) best = { rtt, offset: m.at - (m.sentAt + m.back) / 2 };
  }
  return best.offset;
}

/** Round trips per rank that {@linkcode clockOffsetMs} measures. */
export const CLOCK_ROUNDS = 12;

/** A time as 2 int32 (the bits of a float64), since collectives carry 32-bit arrays. */
const encodeTime = (ms: number) => new Int32Array(Float64Array.of(ms).buffer);
const decodeTime = (a: Int32Array | Float32Array) => new Float64Array(a.slice().buffer)[0];

/**
 * This rank's clock (`nowMs()`) less rank 0's, measured over `comm` with
 * {@linkcode CLOCK_ROUNDS} round trips to rank 0 (every rank must call it;
 * rank 0 gets 0). Comparing ranks' times, such as the last rank's issue of
 * an all-to-all, needs one clock.
 */
export async function clockOffsetMs(comm: Communicator): Promise<number> {
  const tag = "clock-offset";
  if (comm.rank === 0) {
    for (let peer = 1; peer < comm.size; peer++) {
      for (let i = 0; i < CLOCK_ROUNDS; i++) {
        await comm.recv(peer, { tag });
        await comm.send(peer, encodeTime(nowMs()), { tag });
      }
    }
    return 0;
  }
  const rank0LessMine = await offsetOfShortestTrip(CLOCK_ROUNDS, async () => {
    const sentAt = nowMs();
    await comm.send(0, new Int32Array(2), { tag });
    const at = decodeTime((await comm.recv(0, { tag })) as Int32Array);
    return { sentAt, at, back: nowMs() };
  });
  return -rank0LessMine;
}
