/**
 * Real shaping for the `nats` transport: emulated hosts as Linux network
 * namespaces, each joined to a bridge by a veth pair whose host end is shaped
 * with `tc`, so bytes really cross a slower link. Needs root, `ip` and `tc`
 * (Debian package `iproute2`). Addresses are `10.213.<net>.<i+1>/24`.
 *
 * The veths carry jumbo frames ({@linkcode LINK_MTU}) one packet at a time
 * (no GSO batches), so the shaper's burst holds to the packet.
 *
 * Each host's egress is an `htb` qdisc whose one class (1:1) has the rate;
 * `u32` filters send into it either all traffic or only TCP traffic from or
 * to the given ports, and everything else leaves unshaped (htb's direct
 * queue). The rate can be changed in place ({@linkcode ShapedHosts.setRate}).
 * No latency is added: this kernel has no `netem`.
 *
 * @module
 */

/**
 * The veths' MTU: jumbo frames, as datacenter links carry. Every packet that
 * crosses a link is work for the process that reads it (nats-server, or a
 * rank's communication worker) on the same cores as the compute that the
 * link's transfers overlap, where a real link's DMA costs those cores
 * nothing. At 1500 bytes a 10 MB/s link is about 6,700 packets a second per
 * direction, and on 2 cores the traced compute of a ScMoE Pos-2 training
 * step whose all-to-alls crossed a 4.5 MB/s link came to 923 and 928 ms,
 * against 810 and 840 ms at 9000 bytes (same transfer times, 2 alternating
 * runs each). The cost: the shaper sends a whole packet at once, so after an
 * idle spell a message's first 9000 bytes leave ahead of the rate (1 ms of
 * a 9 MB/s link).
 */
export const LINK_MTU = 9000;

/** Options of {@linkcode createShapedHosts}. */
export interface ShapedHostsOptions {
  /** Number of emulated hosts. */
  hosts: number;
  /** Egress rate of every host in megabits per second. */
  rateMbit: number;
  /** Third octet of the 10.213.x.0/24 network (0). */
  net?: number;
  /**
   * Shape only TCP traffic from or to these ports (in both directions: a
   * server's replies and its clients' requests); other traffic is unshaped.
   * Default: all traffic is shaped.
   */
  ports?: number[];
}

/** The emulated hosts; {@linkcode ShapedHosts.destroy} removes them. */
export interface ShapedHosts {
  /** Namespace name of each host. */
  namespaces: string[];
  /** IPv4 address of each host. */
  addresses: string[];
  /** Runs `cmd` inside host `i`'s namespace (as `ip netns exec`). */
  command(i: number, cmd: string[], opts?: Deno.CommandOptions): Deno.Command;
  /** Changes every host's egress rate in place (`tc class change`). */
  setRate(rateMbit: number): Promise<void>;
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
 * The arguments of the shaped htb class 1:1 at `rateMbit`, with a burst of
 * 1 ms of it (at least one packet with its link header), so that even small
 * messages leave at the rate.
 */
function shapedClass(rateMbit: number): string[] {
  const burst = `${Math.max(LINK_MTU + 100, Math.ceil(rateMbit * 1e6 / 8 / 1000))}b`;
  const rate = `${rateMbit}mbit`;
  return ["parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate]
    .concat(["burst", burst, "cburst", burst]);
}

/**
 * Builds `hosts` namespaces on one bridge, each host's egress (or its traffic
 * on `ports`) shaped to `rateMbit`.
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
      await inBr("link", "set", port, "mtu", `${LINK_MTU}`, "master", "br0", "up");
      await ip("-n", ns, "link", "set", "lo", "up");
      await ip("-n", ns, "addr", "add", `${addresses[i]}/24`, "dev", veth);
      // Packets of one MTU (no GSO batches of up to 64 kB), so the burst holds.
      await ip("-n", ns, "link", "set", veth, "mtu", `${LINK_MTU}`, "gso_max_segs", "1", "up");
      const tc = (...a: string[]) => ip("tc", "-n", ns, ...a);
      await tc("qdisc", "add", "dev", veth, "root", "handle", "1:", "htb");
      await tc("class", "add", "dev", veth, ...shapedClass(opts.rateMbit));
      const filter = (match: string) =>
        tc("filter", "add", "dev", veth, ...`parent 1: ${match} flowid 1:1`.split(" "));
      if (!opts.ports) await filter("protocol all u32 match u32 0 0");
      for (const port of opts.ports ?? []) {
        await filter(`protocol ip u32 match ip sport ${port} 0xffff`);
        await filter(`protocol ip u32 match ip dport ${port} 0xffff`);
      }
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
    setRate: async (rateMbit) => {
      for (const [i, ns] of namespaces.entries()) {
        const veth = `sc${id}v${i}`;
        await ip("tc", "-n", ns, "class", "change", "dev", veth, ...shapedClass(rateMbit));
      }
    },
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
