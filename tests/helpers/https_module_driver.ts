/**
 * A driver whose actor module is served over `https:` (see
 * `tests/actors_module_roots.test.ts`): `deno run -A https_module_driver.ts
 * CLUSTER ROOT MODULE_URL` builds a `Greeter` from MODULE_URL under the module
 * root ROOT and prints its reply as JSON. The server's certificate comes from
 * `DENO_CERT` in the environment.
 *
 * @module
 */
import { init, remote, shutdown } from "../../actors/mod.ts";

const [cluster, root, moduleUrl] = Deno.args;
await init({ cluster, moduleRoots: [root] });
try {
  const Greeter = remote<new (greeting: string) => { greet(name: string): string }>(
    moduleUrl,
    "Greeter",
  );
  const g = await Greeter.remote("over tls");
  console.log(JSON.stringify({ reply: await g.greet("ada") }));
} finally {
  await shutdown();
}
