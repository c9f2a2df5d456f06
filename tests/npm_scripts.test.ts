/**
 * deno.json denies the npm install scripts of msgpackr-extract and core-js
 * (so `deno install` does not warn about them): msgpackr still loads the
 * prebuilt native extractor of @msgpackr-extract/msgpackr-extract-<platform>
 * at run time, which is all that script would have checked for.
 */
import { equal } from "node:assert/strict";
import * as msgpackr from "msgpackr";

Deno.test("npm scripts: msgpackr runs with its native extractor without the install script", () => {
  const { allowScripts } = JSON.parse(
    Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
  );
  equal(allowScripts.deny.includes("npm:msgpackr-extract"), true);
  equal((msgpackr as { isNativeAccelerationEnabled?: boolean }).isNativeAccelerationEnabled, true);
});
