// TCP over the simulator: hosts that run the real TcpStack with a small application on top
// (a bulk sender, a sink that hashes what it reads), for scenario tests.
import { createHash, type Hash } from 'node:crypto';
import type { Instant, SansIoNode, Transmit } from '../../src/ip/sansio.js';
import { TcpStack, type TcpStackOptions } from '../../src/tcp/stack.js';
import type { TcpConnection, TcpEvent } from '../../src/tcp/connection.js';
import { parseIpAddress } from '../../src/ip/address.js';
import { Rng } from '../sim/rng.js';

export const addr = (text: string): Buffer => parseIpAddress(text).bytes;

export type App = (now: Instant, host: TcpHost) => void;

/** A host: a TcpStack with an application run after every input and timeout. */
export class TcpHost implements SansIoNode {
  readonly stack: TcpStack;
  readonly log: Array<{ time: Instant; conn: TcpConnection; event: TcpEvent }> = [];
  private readonly apps: App[] = [];
  onEvent: ((now: Instant, conn: TcpConnection, event: TcpEvent) => void) | null = null;

  constructor(options: TcpStackOptions = {}) {
    this.stack = new TcpStack({ isnSecret: Buffer.from('simulated secret'), ...options });
  }

  addApp(app: App): void {
    this.apps.push(app);
  }

  private runApps(now: Instant): void {
    for (let e = this.stack.pollEvent(); e; e = this.stack.pollEvent()) {
      this.log.push({ time: now, conn: e.conn, event: e.event });
      this.onEvent?.(now, e.conn, e.event);
    }
    for (const app of this.apps) app(now, this);
  }

  handleInput(now: Instant, iface: number, packet: Buffer): void {
    this.stack.handleInput(now, iface, packet);
    this.runApps(now);
  }

  handleTimeout(now: Instant): void {
    this.stack.handleTimeout(now);
    this.runApps(now);
  }

  pollTransmit(now: Instant): Transmit | null {
    return this.stack.pollTransmit(now);
  }

  pollTimeout(): Instant | null {
    return this.stack.pollTimeout();
  }

  /** Runs the applications now (after a user action from `sim.at`). */
  kick(now: Instant): void {
    this.runApps(now);
  }
}

/** Deterministic pseudo-random bytes. */
export function randomBytes(n: number, seed: number): Buffer {
  const rng = new Rng(seed);
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE(rng.nextU32(), i);
  for (; i < n; i++) b[i] = rng.nextU32() & 0xff;
  return b;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Writes `data` on `conn` as the window allows, then half-closes. */
export class BulkSender {
  private offset = 0;
  finished = false;
  constructor(readonly conn: TcpConnection, readonly data: Buffer, readonly chunk = 64 * 1024, readonly closeWhenDone = true) {}
  pump(host: TcpHost): void {
    while (this.offset < this.data.length) {
      const n = this.conn.write(this.data.subarray(this.offset, Math.min(this.offset + this.chunk, this.data.length)));
      if (n === 0) break;
      this.offset += n;
      host.stack.touch(this.conn);
    }
    if (this.offset === this.data.length && !this.finished) {
      this.finished = true;
      if (this.closeWhenDone) {
        this.conn.shutdown();
        host.stack.touch(this.conn);
      }
    }
  }
  get written(): number {
    return this.offset;
  }
}

/** Reads everything from `conn`, hashing it; `paused` stops reading (to close the window). */
export class Sink {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  paused = false;
  ended = false;
  constructor(readonly conn: TcpConnection, readonly closeOnEnd = true) {}
  pump(host: TcpHost): void {
    if (this.paused) return;
    let read = false;
    for (let b = this.conn.read(); b; b = this.conn.read()) {
      this.hash.update(b);
      this.bytes += b.length;
      read = true;
    }
    if (read) host.stack.touch(this.conn);
    if (this.conn.readEnded && !this.ended) {
      this.ended = true;
      if (this.closeOnEnd) {
        this.conn.shutdown();
        host.stack.touch(this.conn);
      }
    }
  }
  digest(): string {
    return this.hash.copy().digest('hex');
  }
}
