/**
 * Host agents as a user starts them: `deno task agent --nats URL` processes,
 * with the server's token in their environment.
 *
 * @module
 */
import assert from "node:assert/strict";

/** A running agent process and the id it announced. */
export interface AgentChild {
  /** The agent's id (from its first line). */
  id: string;
  /** The process. */
  child: Deno.ChildProcess;
}

/** Starts `cli/agent.ts --nats URL ...more` and waits for its announcement. */
export async function startAgent(
  url: string,
  token: string,
  more: string[] = [],
): Promise<AgentChild> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../cli/agent.ts", import.meta.url).pathname,
      "--nats",
      url,
      ...more,
    ],
    env: { SCMOE_NATS_TOKEN: token },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  const id = /agent (\w+) on/.exec(value ?? "")?.[1];
  assert.ok(id, `agent announced itself: ${value}`);
  return { id, child };
}

/** Stops an agent with SIGINT and asserts it exits cleanly. */
export async function stopAgent(agent: AgentChild): Promise<void> {
  agent.child.kill("SIGINT");
  await agent.child.stdout.cancel().catch(() => {});
  const status = await agent.child.status;
  assert.equal(status.code, 0, "the agent exits cleanly on SIGINT");
}
