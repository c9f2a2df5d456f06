/**
 * The package as an outside project uses it: a new folder outside the tree,
 * with its own `deno.json` that links the package (`"links"`, as a local
 * checkout or a JSR install would be linked), imports `@scmoe/actors` by
 * name, and runs its own copies of the examples: its own actor classes on
 * both clusters, its own training script on its own text file, and its own
 * model with the MoE layer.
 */
import {
  assertActorsOutput,
  assertMixerOutput,
  assertTrainTextOutput,
} from "./helpers/examples.ts";
import { denoRun, smallCorpus } from "./helpers/deno_run.ts";

const PACKAGE = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A user's project: `deno.json` linking the package, and the examples copied in as its own files. */
async function userProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "user_project_" });
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({ links: [PACKAGE], nodeModulesDir: "auto" }, null, 2),
  );
  for (const name of ["actors.ts", "train_text.ts", "moe_mixer.ts"]) {
    await Deno.copyFile(`${PACKAGE}/examples/${name}`, `${dir}/${name}`);
  }
  await Deno.writeTextFile(`${dir}/corpus.txt`, smallCorpus());
  return dir;
}

Deno.test("an outside project runs its own actors and its own training script", async (t) => {
  const dir = await userProject();
  try {
    for (const cluster of ["local", "nats"]) {
      await t.step(`its actor classes on a ${cluster} cluster`, async () => {
        assertActorsOutput(await denoRun("actors.ts", ["--cluster", cluster], { cwd: dir }));
      });
    }
    await t.step("its training script: loss falls, checkpoint resumes and reloads", async () => {
      const run = await denoRun(
        "train_text.ts",
        ["corpus.txt", "--out", `${dir}/run`, "--steps", "8"],
        { cwd: dir },
      );
      assertTrainTextOutput(run, 8);
    });
    await t.step("its own model with the MoE layer on 2 local ranks", async () => {
      assertMixerOutput(await denoRun("moe_mixer.ts", ["--steps", "30"], { cwd: dir }));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
