/**
 * `deno task generate --checkpoint DIR --prompt TEXT [flags]`: the library's
 * `generate` with its options given as flags; prints the prompt and the text
 * as it comes. DIR is a run directory (its latest valid checkpoint) or one
 * `ckpt-NNNNNN` directory.
 *
 * @module
 */
import { shutdown } from "../actors/mod.ts";
import { type BackendName, BACKENDS } from "../models/backend.ts";
import type { Cluster } from "../training/config.ts";
import { generate, type GenerateOptions, resolveGenerateOptions } from "../training/generate.ts";
import { type Command, parseCommand, usage } from "./flags.ts";
import { runCli } from "./run.ts";

/** `deno task generate`'s command line. */
export const GENERATE_COMMAND: Command = {
  name: "deno task generate",
  summary: "Continues a prompt from a checkpoint through N expert-parallel rank actors.",
  flags: {
    checkpoint: { arg: "DIR", help: "run or ckpt-NNNNNN directory (required)" },
    prompt: { arg: "TEXT", help: "text to continue, not empty (required)" },
    "max-tokens": { arg: "N", help: "bytes to generate, a positive integer (default 200)" },
    temperature: { arg: "T", help: "sampling temperature, a positive number (default 0.8)" },
    "top-p": { arg: "P", help: "nucleus sampling mass, a number in (0, 1] (default 0.95)" },
    greedy: { boolean: true, help: "always take the likeliest byte" },
    seed: { arg: "N", help: "sampling seed, a non-negative integer (default 0)" },
    ranks: { arg: "N", help: "rank actors, a positive integer dividing the experts (default 2)" },
    cluster: { arg: "C", help: "local|nats|nats://host:port (default local)" },
    backend: { arg: "NAME", help: `tfjs backend: ${BACKENDS.join("|")} (default wasm)` },
    "allow-software-webgpu": {
      boolean: true,
      help: "with --backend webgpu: run on a software adapter (no GPU), slowly",
    },
  },
  epilog: "Add --debug to show the stack trace of an expected failure.",
};

/** A parsed `generate` command line. */
export interface GenerateArgs {
  /** The options given. */
  options: GenerateOptions;
  /** `--help`: print the usage and nothing else. */
  help: boolean;
}

/**
 * Reads a `generate` command line.
 *
 * @throws {UsageError} one line naming the flag and what it accepts.
 */
export function parseGenerateArgs(args: readonly string[]): GenerateArgs {
  const f = parseCommand(GENERATE_COMMAND, args);
  if (f.help) return { options: { checkpoint: "", prompt: "" }, help: true };
  const cluster = f.string("cluster") ?? "local";
  const options: GenerateOptions = {
    checkpoint: f.required("checkpoint"),
    prompt: f.required("prompt"),
    maxTokens: f.integer("max-tokens", 200, 1),
    temperature: f.number("temperature", 0.8),
    topP: f.number("top-p", 0.95, { min: 0, max: 1 }),
    greedy: f.has("greedy"),
    seed: f.integer("seed", 0, 0),
    ranks: f.integer("ranks", 2, 1),
    cluster: cluster as Cluster,
    backend: f.choice("backend", BACKENDS, "wasm") as BackendName,
    allowSoftwareWebgpu: f.has("allow-software-webgpu"),
  };
  if (!/^(local|nats|nats:\/\/.+)$/.test(cluster)) {
    f.choice("cluster", ["local", "nats", "nats://host:port"], "local");
  }
  return { options, help: false };
}

/** The CLI: returns the exit code; expected failures are thrown for {@linkcode runCli}. */
export async function main(args: string[]): Promise<number> {
  const parsed = parseGenerateArgs(args);
  if (parsed.help) {
    console.log(usage(GENERATE_COMMAND));
    return 0;
  }
  const options = resolveGenerateOptions(parsed.options);
  const encoder = new TextEncoder();
  const write = (text: string) => Deno.stdout.writeSync(encoder.encode(text));
  let started = false;
  await generate(options, (text) => {
    // The prompt is printed once the model is loaded and the first byte is on its way.
    if (!started) write(options.prompt);
    started = true;
    write(text);
  });
  write("\n");
  return 0;
}

if (import.meta.main) await runCli(main, { onInterrupt: shutdown });
