/**
 * Errors the actor runtime raises. Each names what went wrong in one line.
 *
 * @module
 */

/** An exception thrown inside a remote actor method, carried back to the caller. */
export class RemoteError extends Error {
  /** Name of the remote exception class (e.g. `TypeError`). */
  readonly remoteName: string;
  /** Stack trace as printed in the actor. */
  readonly remoteStack: string;
  /** Builds the error from the remote name, message and stack. */
  constructor(remoteName: string, message: string, remoteStack = "") {
    super(`${remoteName}: ${message}`);
    this.name = "RemoteError";
    this.remoteName = remoteName;
    this.remoteStack = remoteStack;
  }
}

/** The actor's worker or process died (or was killed) before the call finished. */
export class ActorDiedError extends Error {
  /** Builds the error for the actor `actorId`. */
  constructor(readonly actorId: string, reason: string) {
    super(`actor ${actorId} died: ${reason}`);
    this.name = "ActorDiedError";
  }
}

/** `get` or `wait` ran past its deadline. */
export class GetTimeoutError extends Error {
  /** Builds the error for a deadline of `timeoutMs` with `pending` refs unresolved. */
  constructor(timeoutMs: number, pending: number) {
    super(`get timed out after ${timeoutMs} ms with ${pending} object ref(s) unresolved`);
    this.name = "GetTimeoutError";
  }
}

/** No actor of that name lives in this job. */
export class ActorNotFoundError extends Error {
  /** Builds the error for the missing actor name. */
  constructor(name: string) {
    super(`no actor named "${name}" in this job`);
    this.name = "ActorNotFoundError";
  }
}

/** The runtime was used before `init()` or after `shutdown()`, or set up twice. */
export class RuntimeStateError extends Error {
  /** Builds the error with a one-line explanation. */
  constructor(message: string) {
    super(message);
    this.name = "RuntimeStateError";
  }
}

/**
 * The module of `remote(moduleUrl, …)` lies outside the driver's module
 * roots (see `InitOptions.moduleRoots`): no actor is spawned for it.
 */
export class ModuleNotAllowedError extends Error {
  /** Builds the error for `moduleUrl`, outside every one of `roots`. */
  constructor(readonly moduleUrl: string, readonly roots: readonly string[]) {
    super(
      `actor module ${moduleUrl} is outside the allowed module roots (${
        roots.join(", ")
      }); add its folder to init({ moduleRoots })`,
    );
    this.name = "ModuleNotAllowedError";
  }
}
