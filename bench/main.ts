/**
 * `deno task bench <name> [--json] [--quick]`: runs one benchmark.
 *
 * @module
 */

const BENCHES: Record<string, () => Promise<(args: string[]) => Promise<void>>> = {
  actors: async () => (await import("./actors.ts")).runActorsBench,
  collectives: async () => (await import("./collectives.ts")).runCollectivesBench,
  quality: async () => (await import("./quality.ts")).runQualityBench,
  overlap: async () => (await import("./overlap.ts")).runOverlapBench,
  scenarios: async () => (await import("./scenarios.ts")).runScenariosBench,
  report: async () => (await import("./report.ts")).runReportBench,
  faults: async () => (await import("./faults.ts")).runFaultsBench,
  soak: async () => (await import("./soak.ts")).runSoakBench,
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
