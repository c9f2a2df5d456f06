/**
 * NATS authentication end to end: a server that requires a token, a user and
 * password, an nkey, or a credentials file (JWT, operator mode); a client
 * without credentials gets nothing; a driver and its agent's actor processes
 * with credentials work.
 */
import assert from "node:assert/strict";
import { connectNats } from "../actors/bus_nats.ts";
import { createUser } from "@nats-io/nkeys";
import {
  createAccount,
  createOperator,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from "@nats-io/jwt";
import { Agent, init, remote, shutdown, startNatsServer } from "../actors/mod.ts";
import type { NatsServerOptions } from "../actors/mod.ts";
import type { Counter } from "./fixtures/actors.ts";

const CounterActor = remote<typeof Counter>(
  new URL("./fixtures/actors.ts", import.meta.url),
  "Counter",
);

/** An operator, an account and a user of it: the server's JWTs and the user's creds file. */
async function jwtChain(): Promise<{ operator: NatsServerOptions["operator"]; creds: string }> {
  const [operator, account, user] = [createOperator(), createAccount(), createUser()];
  // Unlimited: a JWT account's limits default to zero connections.
  const limits = { conn: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1 };
  const accountJwt = await encodeAccount("training", account, { limits }, { signer: operator });
  const credsFile = await Deno.makeTempFile({ prefix: "scmoe-user-", suffix: ".creds" });
  const userJwt = await encodeUser("trainer", user, account);
  await Deno.writeFile(credsFile, fmtCreds(userJwt, user), { mode: 0o600 });
  return {
    operator: {
      jwt: await encodeOperator("scmoe", operator),
      accounts: { [account.getPublicKey()]: accountJwt },
    },
    creds: credsFile,
  };
}

const nkey = createUser();
const chain = await jwtChain();
const cases: { name: string; server: NatsServerOptions; creds: Record<string, string> }[] = [
  { name: "token", server: { token: "s3cret-token" }, creds: { token: "s3cret-token" } },
  {
    name: "user and password",
    server: { users: [{ user: "trainer", password: "pw-123" }] },
    creds: { user: "trainer", pass: "pw-123" },
  },
  {
    name: "nkey",
    server: { users: [{ nkey: nkey.getPublicKey() }] },
    creds: { nkeySeed: new TextDecoder().decode(nkey.getSeed()) },
  },
  {
    name: "credentials file (JWT)",
    server: { operator: chain.operator },
    creds: { credsFile: chain.creds },
  },
];

for (const c of cases) {
  Deno.test(`NATS auth by ${c.name}: no credentials, no access; credentials, a working job`, async () => {
    const server = await startNatsServer(c.server);
    try {
      await assert.rejects(
        connectNats({ servers: [server.url] }, "intruder"),
        /Authorization Violation/,
      );
      await assert.rejects(
        connectNats(
          { servers: [server.url], user: "trainer", pass: "wrong", token: "wrong" },
          "intruder",
        ),
        /Authorization Violation/,
      );
      const creds = { servers: [server.url], ...c.creds };
      const agent = await Agent.start(creds);
      try {
        await init({ cluster: server.url, ...c.creds, agentWaitMs: 3000 });
        try {
          const counter = await CounterActor.remote(41);
          assert.equal(await counter.add(1), 42);
        } finally {
          await shutdown();
        }
      } finally {
        await agent.stop();
      }
    } finally {
      await server.stop();
      if (c.creds.credsFile) await Deno.remove(c.creds.credsFile);
    }
  });
}

Deno.test("the private server of cluster 'nats' binds loopback and requires a random token", async () => {
  const a = await startNatsServer();
  const b = await startNatsServer();
  try {
    assert.match(a.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(a.token && a.token.length >= 32 && a.token !== b.token);
    await assert.rejects(connectNats({ servers: [a.url] }, "intruder"), /Authorization Violation/);
    await assert.rejects(
      connectNats({ servers: [a.url], token: b.token }, "intruder"),
      /Authorization Violation/,
    );
    const nc = await connectNats({ servers: [a.url], token: a.token }, "owner");
    await nc.close();
  } finally {
    await a.stop();
    await b.stop();
  }
});
