// The `mptun` command.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { output } from '../appliance/output.js';

const USAGE = `mptun — userspace Multipath TCP (RFC 8684) for Linux

usage:
  mptun up [--config FILE] [--path IFACE[:GATEWAY]]... [--backup IFACE]... [--tun NAME]
           [--exclude CIDR]... [--exclude-lan] [--no-offload] [--mtu N] [--scheduler NAME]
           [--congestion-control lia|cubic] [--fullmesh] [--max-subflows N]
           [--source-range6 PREFIX] [--control-socket PATH] [--state-dir DIR]
           [--log-level error|warn|info|debug] [--metrics [ADDR:]PORT]
           [--server HOST[:PORT] --key FILE [--direct CIDR]... [--server-pool N]]
      Makes the host's TCP use every path at once (MPTCP to destinations that speak it, plain
      TCP to the others; with --server, every connection goes over MPTCP to that concentrator,
      \`mptun server\`, which connects to the destination: all destinations get the paths' sum,
      but those in a --direct CIDR; --server-pool N connections to it wait open ahead of the
      apps, default 2), IPv4 and IPv6. Paths: every interface with a default route
      and a global address (IPv4, IPv6 or both: one path per interface), or those named with
      --path; --backup marks one as used only when the others are gone. --metrics serves
      Prometheus metrics at http://ADDR:PORT/metrics (ADDR defaults to 127.0.0.1). Runs in the
      foreground; Ctrl-C or SIGTERM tears everything down. The config file (YAML or JSON) has a
      field for every flag: docs/config.schema.json.
  mptun down [--config FILE] [--state-dir DIR]
      Stops a running instance, or removes what a killed one left (rules, routes, the nft table,
      sysctls); the routing is then what it was before \`mptun up\`. --config: the state dir
      of the instance started with that file.
  mptun status [--json] [--control-socket PATH]
      Asks the running instance: paths, connections, subflows per path (bytes, RTT, cwnd,
      state) and the counters.
  mptun server --listen [ADDR:]PORT --key FILE [--allow CIDR]... [--max-pending N] [--max-open N]
  mptun server --genkey FILE | mptun server status [--json]
      The concentrator (RFC 8803 Convert over the kernel's MPTCP): \`mptun server --help\`.
  mptun echo --tun NAME --address CIDR [--route CIDR]... [--vnet-hdr]
      Opens a TUN device, gives it the address, routes the prefixes into it, and answers
      every ICMP/ICMPv6 echo request that arrives: a first end-to-end check of the device.
      Runs in the foreground; Ctrl-C or SIGTERM closes the device (its routes go with it).
  mptun demo [--keep]
      The embedded default: builds the two-link test bed in network namespaces (scripts/testbed.sh),
      runs mptun in the client namespace, sends packets through it, reports, and tears down.
  mptun --version | --help

Needs root (CAP_NET_ADMIN) for the TUN device and the routing.`;

export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  // a closed stdout or stderr (`mptun status | head -1`) is noticed, never fatal
  output.install();
  try {
    switch (command) {
      case 'up': {
        const { runUp } = await import('./up.js');
        return await runUp(rest);
      }
      case 'down': {
        const { runDown } = await import('./up.js');
        return await runDown(rest);
      }
      case 'status': {
        const { runStatus } = await import('./up.js');
        return await runStatus(rest);
      }
      case 'server': {
        const { runServer } = await import('./server.js');
        return await runServer(rest);
      }
      case 'echo': {
        const { runEcho } = await import('./echo.js');
        return await runEcho(rest);
      }
      case 'demo': {
        const { runDemo } = await import('./demo.js');
        return await runDemo(rest);
      }
      case '--version':
      case 'version': {
        const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
        console.log(`mptun ${pkg.version}`);
        return 0;
      }
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        console.error(`mptun: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    console.error(`mptun ${command}: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.MPTUN_DEBUG && e instanceof Error) console.error(e.stack);
    return 1;
  }
}

export { parseArgs };
