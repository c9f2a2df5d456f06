/**
 * One expert-parallel rank for overlap measurements, as a process (in a
 * network namespace, started by `overlap_netns.ts`): reads its
 * {@linkcode ProcessRankRequest} (serialized with `node:v8`, as structured
 * clone does), joins its `nats` groups with the credentials of its
 * environment (`SCMOE_NATS_TOKEN`, ...), runs the cases
 * (`overlap_cases.ts`) and writes its `CaseResult[]` the same way. Errors go
 * to stderr with exit code 1.
 *
 * Usage: `deno run -A bench/overlap_netns_rank.ts REQUEST_FILE RESULT_FILE`
 *
 * @module
 */
import { deserialize, serialize } from "node:v8";
import { createCommunicator } from "../collectives/comm.ts";
import { credentialsFromEnv } from "../collectives/nats_connect.ts";
import type { NatsGroupSpec } from "../collectives/types.ts";
import { type BackendName, setupBackend } from "../models/backend.ts";
import type { ProcessRankRequest } from "./overlap_netns.ts";
import { runCases } from "./overlap_cases.ts";

const [requestFile, resultFile] = Deno.args;
const req: ProcessRankRequest = deserialize(await Deno.readFile(requestFile));
const join = (spec: NatsGroupSpec) =>
  createCommunicator({ ...spec, ...credentialsFromEnv(spec.servers) });
await setupBackend(req.backend as BackendName);
const comm = await join(req.spec);
const gradComm = req.gradSpec && await join(req.gradSpec);
const results = await runCases(req.cases, req.interleave ?? false, comm, gradComm);
await comm.close();
await gradComm?.close();
await Deno.writeFile(resultFile, serialize(results));
