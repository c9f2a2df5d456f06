/**
 * A host cut off (its veth set down) under a group of ranks on NATS across
 * network namespaces (root, as on our machines and CI; elsewhere the harness
 * fails with NotRootError): the survivor's collectives fail by their
 * deadline naming the missing rank; when the link returns a new collective
 * succeeds on both ranks; left cut, each rank stops with one line and exit
 * code 3 after its budget. This is the collective-level version of the fault
 * (no training run in the namespaces).
 */
import assert from "node:assert/strict";
import { cutHost } from "./helpers/cut_host_collectives.ts";

Deno.test({
  name: "cut host: the missing rank is named, collectives succeed again once it is back",
  fn: async () => {
    const r = await cutHost({ cutMs: 3000, net: 91 });
    assert.ok(r.survived, r.note);
    assert.match(
      r.error,
      /^allreduce .*on rank 0 timed out after \d+ ms; ranks that did not deliver: 1$/,
    );
    assert.ok(r.detectMs < 2000, `detected after ${r.detectMs} ms`);
    assert.ok(r.recoverMs < 15_000, `recovered ${r.recoverMs} ms after the link came back`);
  },
});

Deno.test({
  name: "cut host for good: each rank stops with one line after its budget, exit code 3",
  fn: async () => {
    const r = await cutHost({ cutMs: null, budgetMs: 2000, net: 92 });
    assert.deepEqual(r.stopped.map((s) => s.code), [3, 3], r.note);
    assert.match(
      r.stopped[0].error,
      /^error: rank 0: no collective succeeded for 2000 ms \(last: .*ranks that did not deliver: 1\); stopping$/,
    );
    assert.match(r.stopped[1].error, /did not deliver: 0\); stopping$/);
  },
});
