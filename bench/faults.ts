/**
 * `deno task bench faults [--json] [--quick]`: runs every fault case
 * ({@link ../harness/fault_cases.ts}) and reports, per case, whether the run
 * survived (1/0), milliseconds to detect the fault and to recover from it,
 * the steps trained again, and the data lost. Cases that are not run are
 * listed with survived 0 and a note.
 *
 * @module
 */
import { failedCase, faultCases, type FaultResult } from "../harness/fault_cases.ts";
import { type BenchRow, printRows } from "./output.ts";
import { parseCommand, usage } from "../cli/flags.ts";
import { FAULTS_COMMAND } from "./commands.ts";

/**
 * Runs every fault case and prints the table (or JSON lines with `--json`),
 * on a command line of {@linkcode FAULTS_COMMAND}; `--help` prints the usage.
 *
 * @throws {UsageError} a bad command line, before any work.
 */
export async function runFaultsBench(args: string[]): Promise<void> {
  const f = parseCommand(FAULTS_COMMAND, args);
  if (f.help) return console.log(usage(FAULTS_COMMAND));
  const json = f.has("json"), quick = f.has("quick");
  const tmp = await Deno.makeTempDir({ prefix: "bench_faults_" });
  const cases = faultCases(quick);
  const rows: BenchRow[] = [];
  try {
    for (const [name, run] of cases) {
      let r: FaultResult;
      try {
        r = await run(`${tmp}/${name}`);
      } catch (e) {
        r = await failedCase(e);
      }
      const row = (metric: string, value: number | string, unit: string): BenchRow => ({
        bench: "faults",
        case: name,
        metric,
        value,
        unit,
      });
      rows.push(
        row("survived", r.survived ? 1 : 0, "bool"),
        row("detect_ms", r.detectMs, "ms"),
        row("recover_ms", r.recoverMs, "ms"),
        row("steps_redone", r.stepsRedone, "steps"),
        row("data_lost", r.dataLost, "steps"),
        row("note", r.note, ""),
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  printRows(rows, json);
}
