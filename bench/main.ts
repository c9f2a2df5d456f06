/**
 * `deno task bench <name> [--json] [--quick]`: runs one benchmark.
 *
 * @module
 */

const BENCHES: Record<string, () => Promise<(args: string[]) => Promise<void>>> = {
  actors: async () => (await import("./actors.ts")).runActorsBench,
};

const [name, ...rest] = Deno.args;
const load = name ? BENCHES[name] : undefined;
if (!load) {
  console.error(
    `bench: unknown benchmark "${name ?? ""}"; choose one of: ${Object.keys(BENCHES).join(", ")}`,
  );
  Deno.exit(2);
}
await (await load())(rest);
