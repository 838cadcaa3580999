// The `mptun` command.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';

const USAGE = `mptun — userspace Multipath TCP (RFC 8684) for Linux

usage:
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
  try {
    switch (command) {
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
    return 1;
  }
}

export { parseArgs };
