/**
 * Futures of remote calls: `ObjectRef`, and the `get` / `wait` verbs.
 *
 * @module
 */
import { GetTimeoutError } from "./errors.ts";

let nextRefId = 0;

/**
 * The future result of a remote call. Awaitable; pass it as an argument to
 * another call and it is resolved before that call runs.
 *
 * @example
 * ```ts ignore
 * const ref = counter.add(1);   // returns at once
 * const value = await ref;      // or: await get(ref)
 * ```
 */
export class ObjectRef<T> implements Promise<T> {
  /** Process-unique id of this ref. */
  readonly id: string;
  readonly #promise: Promise<T>;
  #settled = false;

  /** Wraps a promise; the runtime makes refs, users receive them. */
  constructor(promise: Promise<T>, label = "") {
    this.id = `${label}#${nextRefId++}`;
    this.#promise = promise;
    // A ref nobody awaits must not surface as an unhandled rejection.
    promise.then(() => this.#settled = true, () => this.#settled = true);
  }

  /** True once the call has finished, successfully or not. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Makes the ref awaitable. */
  then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#promise.then(onfulfilled, onrejected);
  }

  /** Like `Promise.prototype.catch`. */
  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.#promise.catch(onrejected);
  }

  /** Like `Promise.prototype.finally`. */
  finally(onfinally?: (() => void) | null): Promise<T> {
    return this.#promise.finally(onfinally);
  }

  /** Tag shown by `Object.prototype.toString`. */
  readonly [Symbol.toStringTag] = "ObjectRef";
}

/** Options of {@linkcode get}. */
export interface GetOptions {
  /** Reject with `GetTimeoutError` when not all refs resolved in time. */
  timeoutMs?: number;
}

/** Resolves one ref or an array of refs, with an optional deadline. */
export function get<T>(ref: ObjectRef<T>, opts?: GetOptions): Promise<T>;
/** Resolves every ref of the array, in order. */
export function get<T>(refs: ObjectRef<T>[], opts?: GetOptions): Promise<T[]>;
export async function get<T>(
  refs: ObjectRef<T> | ObjectRef<T>[],
  opts: GetOptions = {},
): Promise<T | T[]> {
  const list = Array.isArray(refs) ? refs : [refs];
  const all = Promise.all(list.map((r) => Promise.resolve(r)));
  const values = opts.timeoutMs === undefined
    ? await all
    : await withDeadline(all, opts.timeoutMs, () => list.filter((r) => !r.settled).length);
  return Array.isArray(refs) ? values : values[0];
}

/** Options of {@linkcode wait}. */
export interface WaitOptions {
  /** How many refs must be ready before returning (default 1). */
  numReturns?: number;
  /** Return what is ready after this long, even if fewer than `numReturns`. */
  timeoutMs?: number;
}

/**
 * Waits until `numReturns` refs are settled (or the timeout passes) and splits
 * the list into `ready` and `pending`, keeping the input order in each.
 */
export async function wait<T>(
  refs: ObjectRef<T>[],
  opts: WaitOptions = {},
): Promise<{ ready: ObjectRef<T>[]; pending: ObjectRef<T>[] }> {
  const numReturns = opts.numReturns ?? 1;
  if (!Number.isInteger(numReturns) || numReturns < 0 || numReturns > refs.length) {
    throw new RangeError(
      `wait: numReturns must be an integer in [0, ${refs.length}], got ${numReturns}`,
    );
  }
  await new Promise<void>((resolve) => {
    let done = refs.filter((r) => r.settled).length;
    if (done >= numReturns) return resolve();
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(resolve, opts.timeoutMs);
    for (const r of refs) {
      if (r.settled) continue;
      const count = () => {
        if (++done >= numReturns) {
          clearTimeout(timer);
          resolve();
        }
      };
      r.then(count, count);
    }
  });
  return { ready: refs.filter((r) => r.settled), pending: refs.filter((r) => !r.settled) };
}

function withDeadline<T>(p: Promise<T>, timeoutMs: number, pending: () => number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GetTimeoutError(timeoutMs, pending())), timeoutMs);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
