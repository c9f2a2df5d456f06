/**
 * Real shaping for the `nats` transport: emulated hosts as Linux network
 * namespaces, each joined to a bridge by a veth pair whose host end is shaped
 * with `tc tbf`, so bytes really cross a slower link. Needs root, `ip` and
 * `tc` (Debian package `iproute2`). Addresses are `10.213.<net>.<i+1>/24`.
 *
 * @module
 */

/** Options of {@linkcode createShapedHosts}. */
export interface ShapedHostsOptions {
  /** Number of emulated hosts. */
  hosts: number;
  /** Egress rate of every host in megabits per second. */
  rateMbit: number;
  /** Third octet of the 10.213.x.0/24 network (0). */
  net?: number;
}

/** The emulated hosts; {@linkcode ShapedHosts.destroy} removes them. */
export interface ShapedHosts {
  /** Namespace name of each host. */
  namespaces: string[];
  /** IPv4 address of each host. */
  addresses: string[];
  /** Runs `cmd` inside host `i`'s namespace (as `ip netns exec`). */
  command(i: number, cmd: string[], opts?: Deno.CommandOptions): Deno.Command;
  /** Deletes the namespaces (and with them the veths and the bridge). */
  destroy(): Promise<void>;
}

/** Thrown when the caller is not root. */
export class NotRootError extends Error {
  constructor() {
    super("network namespaces and tc shaping need root (uid 0); run as root or use the link model");
    this.name = "NotRootError";
  }
}

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command(args[0] === "tc" ? "tc" : "ip", {
    args: args[0] === "tc" ? args.slice(1) : args,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/**
 * Builds `hosts` namespaces on one bridge, each host's egress shaped to `rateMbit`.
 *
 * @example
 * ```ts ignore
 * import { createShapedHosts } from "./netns.ts";
 * const net = await createShapedHosts({ hosts: 2, rateMbit: 100 });
 * await net.command(1, ["ping", "-c1", net.addresses[0]]).output();
 * await net.destroy();
 * ```
 */
export async function createShapedHosts(opts: ShapedHostsOptions): Promise<ShapedHosts> {
  if (Deno.uid() !== 0) throw new NotRootError();
  const id = crypto.randomUUID().slice(0, 6);
  const bridge = `sc${id}-br`;
  const namespaces = Array.from({ length: opts.hosts }, (_, i) => `sc${id}-h${i}`);
  const addresses = namespaces.map((_, i) => `10.213.${opts.net ?? 0}.${i + 1}`);
  const created: string[] = [];
  const destroy = async () => {
    for (const ns of created.splice(0)) await ip("netns", "del", ns).catch(() => {});
  };
  try {
    await ip("netns", "add", bridge);
    created.push(bridge);
    const inBr = (...a: string[]) => ip("-n", bridge, ...a);
    await inBr("link", "add", "br0", "type", "bridge");
    await inBr("link", "set", "br0", "up");
    for (let i = 0; i < opts.hosts; i++) {
      const ns = namespaces[i];
      await ip("netns", "add", ns);
      created.push(ns);
      const [veth, port] = [`sc${id}v${i}`, `sc${id}b${i}`];
      await ip(
        "link",
        "add",
        veth,
        "netns",
        ns,
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        bridge,
      );
      await inBr("link", "set", port, "master", "br0");
      await inBr("link", "set", port, "up");
      await ip("-n", ns, "link", "set", "lo", "up");
      await ip("-n", ns, "addr", "add", `${addresses[i]}/24`, "dev", veth);
      await ip("-n", ns, "link", "set", veth, "up");
      const burst = `${Math.max(32, Math.ceil(opts.rateMbit * 1e6 / 8 / 250 / 1024))}kb`;
      await ip(
        "tc",
        "-n",
        ns,
        "qdisc",
        "add",
        "dev",
        veth,
        "root",
        "tbf",
        "rate",
        `${opts.rateMbit}mbit`,
        "burst",
        burst,
        "latency",
        "100ms",
      );
    }
  } catch (e) {
    await destroy();
    throw e;
  }
  return {
    namespaces,
    addresses,
    command: (i, cmd, o = {}) =>
      new Deno.Command("ip", { ...o, args: ["netns", "exec", namespaces[i], ...cmd] }),
    destroy,
  };
}

/** Sets the veth of host `host` of `net` down (the host is cut off) or up again. */
export async function setLink(net: ShapedHosts, host: number, state: "down" | "up"): Promise<void> {
  const ns = net.namespaces[host];
  const list = await new Deno.Command("ip", { args: ["-n", ns, "-o", "link", "show"] }).output();
  const veth = /^\d+: ([^@:]+)@/m.exec(new TextDecoder().decode(list.stdout))?.[1];
  if (!veth) throw new Error(`no veth in namespace ${ns}`);
  const out = await new Deno.Command("ip", { args: ["-n", ns, "link", "set", veth, state] })
    .output();
  if (!out.success) {
    throw new Error(`ip link set ${veth} ${state}: ${new TextDecoder().decode(out.stderr)}`);
  }
}
