// The concentrator's control socket: a Unix socket readable by root only (mode 0600 in a 0700
// folder), where `mptun server status` asks for the status, as `mptun status` does with `mptun up`.
import { chmod, mkdir, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';

export const DEFAULT_SERVER_CONTROL_SOCKET = '/run/mptun/server.sock';

export class ControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

/** Serves `status` on `path` with what `status()` returns. */
export async function startControlSocket(path: string, status: () => unknown): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await rm(path, { force: true });
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 4096) sock.destroy();
        return;
      }
      const cmd = buf.slice(0, nl).trim();
      if (cmd === 'status') sock.end(JSON.stringify(status()) + '\n');
      else sock.end(JSON.stringify({ error: `unknown command ${JSON.stringify(cmd)}` }) + '\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return server;
}

export async function stopControlSocket(server: Server, path: string): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(path, { force: true });
}

/** Asks a running `mptun server` for its status. */
export function queryServerStatus(path: string, timeoutMs = 5000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ControlError(`${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write('status\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf));
      } catch {
        reject(new ControlError(`${path}: bad answer`));
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is mptun server running?)' : e.code === 'EACCES' ? ' (root only: use sudo)' : '';
      reject(new ControlError(`${path}: ${e.message}${hint}`));
    });
  });
}
