/**
 * One way of reading a command line for every entry point (`train`,
 * `generate`, `agent`, `bench` and each benchmark): a table of flags, parsed
 * strictly with `node:util` `parseArgs`. `--help` is always a flag. A mistake
 * throws a {@linkcode UsageError} whose message is one line naming the flag
 * and what it accepts; {@linkcode runCli} prints it and exits with code 2.
 *
 * @example
 * ```ts
 * import { type Command, parseCommand, usage } from "./flags.ts";
 * const command: Command = {
 *   name: "deno task hello",
 *   summary: "greets",
 *   flags: { times: { arg: "N", help: "how often, a positive integer (default 1)" } },
 * };
 * const flags = parseCommand(command, ["--times", "3"]);
 * const times = flags.integer("times", 1, 1); // 3
 * if (flags.help) console.log(usage(command));
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";

/** A bad command line or a bad value of an option; the message is one line. */
export class UsageError extends Error {
  /** Makes the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One flag of a command. */
export interface FlagSpec {
  /** `true`: the flag takes no value (a switch). */
  boolean?: boolean;
  /** The value's placeholder in the usage text (default `X`). */
  arg?: string;
  /** One line: what it does, what it accepts, its default. */
  help: string;
  /** The flag may be given several times; {@linkcode ParsedFlags.all} returns every value. */
  multiple?: boolean;
}

/** An entry point: its name as typed, a one-line summary, its flags (without `--help`). */
export interface Command {
  /** How the command is run, e.g. `deno task train`. */
  name: string;
  /** One line on what it does. */
  summary: string;
  /** Flags by name, without the leading `--`. */
  flags: Record<string, FlagSpec>;
  /** Text after the flags in the usage, e.g. notes or examples. */
  epilog?: string;
}

/** The usage text of a command: its name, summary and one line per flag. */
export function usage(command: Command): string {
  const flags: Record<string, FlagSpec> = {
    ...command.flags,
    help: { boolean: true, help: "print this help and exit" },
  };
  const rows = Object.entries(flags).map(([name, spec]) =>
    `  --${spec.boolean ? name : `${name} ${spec.arg ?? "X"}`}`.padEnd(28) + spec.help
  );
  return [
    `usage: ${command.name} [flags]`,
    command.summary,
    "",
    ...rows,
    ...(command.epilog ? ["", command.epilog] : []),
  ].join("\n");
}

/** A parsed command line: typed access to each flag, with one-line errors for bad values. */
export class ParsedFlags {
  /** `--help` was given: print {@linkcode usage} and do nothing else. */
  readonly help: boolean;
  readonly #values: Record<string, (string | boolean)[] | undefined>;
  readonly #command: Command;

  /** Wraps `parseArgs`'s values; use {@linkcode parseCommand}. */
  constructor(command: Command, values: Record<string, (string | boolean)[] | undefined>) {
    this.#command = command;
    this.#values = values;
    this.help = values.help !== undefined;
  }

  /** Whether the flag was given. */
  has(flag: string): boolean {
    this.#spec(flag);
    return this.#values[flag] !== undefined;
  }

  /** The flag's value, `undefined` when absent; a flag given twice is an error unless `multiple`. */
  string(flag: string): string | undefined {
    const spec = this.#spec(flag);
    const given = this.#values[flag];
    if (given === undefined) return undefined;
    if (given.length > 1 && !spec.multiple) {
      throw new UsageError(`--${flag} given ${given.length} times; give it once`);
    }
    return String(given[given.length - 1]);
  }

  /** Every value of a `multiple` flag, in order (none when absent). */
  all(flag: string): string[] {
    this.#spec(flag);
    return (this.#values[flag] ?? []).map(String);
  }

  /** The flag's value, which must be given. */
  required(flag: string): string {
    const text = this.string(flag);
    if (text === undefined || text === "") {
      throw new UsageError(`--${flag} is required: ${this.#spec(flag).help}`);
    }
    return text;
  }

  /** One of `allowed` (default `fallback` when absent). */
  choice<T extends string>(flag: string, allowed: readonly T[], fallback: T): T {
    const text = this.string(flag) ?? fallback;
    if ((allowed as readonly string[]).includes(text)) return text as T;
    throw new UsageError(
      `--${flag} must be one of ${allowed.join(", ")} (got ${JSON.stringify(text)})`,
    );
  }

  /** An integer of at least `min` (default `fallback` when absent). */
  integer(flag: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const text = this.string(flag);
    if (text === undefined) return fallback;
    const n = /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      const kind = max < Number.MAX_SAFE_INTEGER
        ? `an integer from ${min} to ${max}`
        : min === 1
        ? "a positive integer"
        : min === 0
        ? "a non-negative integer"
        : `an integer of at least ${min}`;
      throw new UsageError(`--${flag} must be ${kind} (got ${JSON.stringify(text)})`);
    }
    return n;
  }

  /**
   * A finite number in `(min, max]`, or `[min, max]` with `closedMin`
   * (default `fallback` when absent); with neither bound, any positive number.
   */
  number(
    flag: string,
    fallback: number,
    range: { min?: number; max?: number; closedMin?: boolean } = {},
  ): number {
    const text = this.string(flag);
    if (text === undefined) return fallback;
    const { min = 0, max = Infinity, closedMin = false } = range;
    const n = text.trim() === "" ? NaN : Number(text);
    const above = closedMin ? n >= min : n > min;
    if (!(Number.isFinite(n) && above && n <= max)) {
      const kind = max === Infinity
        ? (min === 0 && !closedMin
          ? "a positive number"
          : `a number ${closedMin ? ">=" : ">"} ${min}`)
        : `a number in ${closedMin ? "[" : "("}${min}, ${max}]`;
      throw new UsageError(`--${flag} must be ${kind} (got ${JSON.stringify(text)})`);
    }
    return n;
  }

  #spec(flag: string): FlagSpec {
    const spec = this.#command.flags[flag];
    if (!spec) throw new Error(`${this.#command.name} has no flag --${flag}`);
    return spec;
  }
}

/**
 * Parses `args` against `command`'s flags. `--flag value` and `--flag=value`
 * both work, and a value may start with `-` (`--steps -1` is then reported
 * as a bad value, not a missing one).
 *
 * @throws {UsageError} an unknown flag, a positional argument, a switch given
 *   a value or a flag lacking one.
 */
export function parseCommand(command: Command, args: readonly string[]): ParsedFlags {
  const specs: Record<string, FlagSpec> = {
    ...command.flags,
    help: { boolean: true, help: "" },
  };
  const options = Object.fromEntries(
    Object.entries(specs).map(([name, spec]) => [
      name,
      { type: spec.boolean ? "boolean" : "string", multiple: true },
    ]),
  ) as Record<string, { type: "string" | "boolean"; multiple: true }>;
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i])?.[1];
    const next = args[i + 1];
    if (
      name !== undefined && name in specs && !specs[name].boolean && next !== undefined &&
      !/^--[A-Za-z]/.test(next)
    ) {
      joined.push(`--${name}=${next}`);
      i++;
    } else joined.push(args[i]);
  }
  const names = Object.keys(specs).map((f) => `--${f}`).join(", ");
  try {
    const { values } = parseArgs({ args: joined, options, strict: true, allowPositionals: false });
    return new ParsedFlags(command, values as Record<string, (string | boolean)[] | undefined>);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const message = e instanceof Error ? e.message : String(e);
    const flag = /Option '(-[-\w]+)/.exec(message)?.[1] ?? /'(-[^']*)'/.exec(message)?.[1];
    switch (code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown flag ${flag} (flags: ${names})`);
      case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL": {
        const arg = /argument '([^']*)'/.exec(message)?.[1];
        throw new UsageError(
          `unexpected argument ${JSON.stringify(arg)}: flags start with -- (flags: ${names})`,
        );
      }
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
        const name = flag?.replace(/^--/, "") ?? "";
        throw new UsageError(
          specs[name]?.boolean
            ? `--${name} takes no value`
            : `--${name} needs a value: ${specs[name]?.help ?? ""}`,
        );
      }
      default:
        throw e;
    }
  }
}
