// `mptun server`: the concentrator, and `mptun server status`.
import { parseArgs } from 'node:util';
import { IpPrefix } from '../ip/address.js';
import {
  Concentrator,
  DEFAULT_SERVER_CONTROL_SOCKET,
  generateKeyFile,
  type Logger,
  queryServerStatus,
  readKeyFile,
  restoreSystem,
  type ServerStatus,
  setupSystem,
  startControlSocket,
  stopControlSocket,
} from '../server/index.js';

export const SERVER_USAGE = `usage:
  mptun server --listen [ADDR:]PORT --key FILE [--allow CIDR]... [--max-pending N] [--max-open N]
               [--control-socket PATH] [--no-system-setup] [--log-level error|warn|info|debug] [--foreground]
      The concentrator: accepts MPTCP (the kernel's, TCP Fast Open on) and plain TCP on PORT,
      reads the RFC 8803 Convert message each client sends first, checks its cookie (made with
      the key FILE) and the destination, connects to the destination over plain TCP and relays.
      Refuses loopback, link-local, multicast, its own addresses, and private ranges unless
      --allow'ed. At start it enables net.mptcp.enabled, the TCP Fast Open server bit, MPTCP
      limits and a 'signal' endpoint per global address (--no-system-setup: leave them), and
      puts them back on exit (SIGTERM, SIGINT). Always runs in the foreground (systemd: Type=simple).
  mptun server --genkey FILE
      Writes a new key (32 random bytes, hex, mode 0600); refuses to overwrite a file.
  mptun server status [--json] [--control-socket PATH]
      Clients, connections (with the kernel's MPTCP subflows), bytes, errors by code, counters.`;

function parseListen(text: string): { host: string; port: number } {
  let host = '';
  let portText = text;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if (text.includes(':')) {
    const i = text.lastIndexOf(':');
    host = text.slice(0, i);
    portText = text.slice(i + 1);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new Error(`--listen ${text}: [ADDR:]PORT with a port from 1 to 65535`);
  return { host, port };
}

function makeLog(level: string): Logger & { error(line: string): void } {
  const order = ['error', 'warn', 'info', 'debug'];
  const at = order.indexOf(level);
  if (at < 0) throw new Error(`--log-level ${level}: one of ${order.join(', ')}`);
  const out = (l: string, line: string): void => {
    if (order.indexOf(l) <= at) process.stderr.write(`mptun server: ${l}: ${line}\n`);
  };
  return { error: (x) => out('error', x), warn: (x) => out('warn', x), info: (x) => out('info', x), debug: (x) => out('debug', x) };
}

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} ${v}: a whole number ≥ 1`);
  return n;
}

export async function runServer(argv: string[]): Promise<number> {
  if (argv[0] === 'status') return runServerStatus(argv.slice(1));
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      key: { type: 'string' },
      genkey: { type: 'string' },
      allow: { type: 'string', multiple: true },
      'max-pending': { type: 'string' },
      'max-open': { type: 'string' },
      'control-socket': { type: 'string' },
      'no-system-setup': { type: 'boolean' },
      'log-level': { type: 'string' },
      foreground: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(SERVER_USAGE);
    return 0;
  }
  if (values.genkey) {
    await generateKeyFile(values.genkey);
    console.log(`mptun server: wrote a new key to ${values.genkey} (mode 0600); copy it to each client`);
    return 0;
  }
  if (!values.listen || !values.key) {
    console.error(`mptun server: --listen and --key are needed\n\n${SERVER_USAGE}`);
    return 2;
  }
  const { host, port } = parseListen(values.listen);
  const key = await readKeyFile(values.key);
  const allow = (values.allow ?? []).map((c) => IpPrefix.parse(c));
  const log = makeLog(values['log-level'] ?? 'info');
  const controlPath = values['control-socket'] ?? DEFAULT_SERVER_CONTROL_SOCKET;
  const record = values['no-system-setup'] ? null : await setupSystem({ log: (l) => log.info(l) });
  const undo = async (): Promise<void> => {
    if (!record) return;
    const failed = await restoreSystem(record, (l) => log.info(l));
    for (const f of failed) log.error(`could not restore: ${f}`);
  };
  const server = new Concentrator({
    host,
    port,
    key,
    allow,
    maxPending: positiveInt('max-pending', values['max-pending'], 64),
    maxOpen: positiveInt('max-open', values['max-open'], 1024),
    log,
  });
  let control;
  try {
    await server.start();
    control = await startControlSocket(controlPath, () => server.status());
  } catch (e) {
    await server.stop();
    await undo();
    throw e;
  }
  log.info(`listening on ${server.status().listen} (kernel MPTCP, TCP Fast Open), control socket ${controlPath}`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log.info(`${sig}: stopping`);
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve();
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
  await stopControlSocket(control, controlPath);
  await server.stop();
  await undo();
  return 0;
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

async function runServerStatus(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, 'control-socket': { type: 'string' } }, strict: true });
  const s = (await queryServerStatus(values['control-socket'] ?? DEFAULT_SERVER_CONTROL_SOCKET)) as ServerStatus;
  if (values.json) {
    console.log(JSON.stringify(s, null, 2));
    return 0;
  }
  const lines: string[] = [];
  lines.push(`mptun server, pid ${s.pid}, up ${s.uptimeS} s, listening on ${s.listen}; up ${mb(s.bytesUp)} down ${mb(s.bytesDown)}`);
  lines.push(`clients: ${s.clients.length}`);
  for (const c of s.clients) lines.push(`  ${c.client}  pending ${c.pending}  open ${c.open}`);
  lines.push(`connections: ${s.connections.length}`);
  for (const c of s.connections) {
    const m = c.mptcp;
    const kind = m === null ? 'plain TCP' : m.fallback ? 'MPTCP fell back to TCP' : `MPTCP, ${m.subflowAddrs.length || m.subflows + 1} subflows`;
    lines.push(`  #${c.id} ${c.client} -> ${c.destination} ${c.state} (${kind})  up ${mb(c.bytesUp)} down ${mb(c.bytesDown)}`);
    for (const sf of m?.subflowAddrs ?? []) lines.push(`      subflow ${sf.local}:${sf.localPort} <- ${sf.remote}:${sf.remotePort}`);
  }
  const errs = Object.entries(s.errorsByCode);
  lines.push(`errors sent: ${errs.length === 0 ? 'none' : errs.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  lines.push(`counters: ${Object.entries(s.counters).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  console.log(lines.join('\n'));
  return 0;
}
