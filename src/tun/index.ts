// The TUN device: a thin, typed wrapper over the project's N-API addon (src/tun/native/tun.c).
//
// Reads arrive in batches: the addon drains up to `maxBatch` packets per wake-up into one
// arena and calls back once with the count; packet i is arena[offsets[i] .. offsets[i]+lengths[i]).
// A batch is valid only until the callback returns: consume views at once, copy what you keep.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VNET_HDR_LEN } from '../ip/vnet.js';

export * from '../ip/vnet.js';

interface NativeTunDevice {
  readonly name: string;
  readonly fd: number;
  readonly arena: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  setOffload(flags: number): void;
  start(onBatch: (count: number) => void): void;
  stop(): void;
  close(): void;
  readBatch(): number;
  writeBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  write(packet: Buffer): boolean;
  stats(): TunStats;
}

interface NativeAddon {
  TunDevice: new (name: string, vnetHdr: boolean, maxBatch: number, arenaBytes: number) => NativeTunDevice;
  TUN_F_CSUM: number;
  TUN_F_TSO4: number;
  TUN_F_TSO6: number;
  TUN_F_TSO_ECN: number;
  VNET_HDR_LEN: number;
  MAX_PACKET: number;
}

export interface TunStats {
  rxPackets: number;
  rxBytes: number;
  rxBatches: number;
  rxErrors: number;
  txPackets: number;
  txBytes: number;
  txErrors: number;
  txAgain: number;
}

/** An error from the device, with a code that says what to do: ENOTUN, EPERM, EBUSY, EINVAL ... */
export class TunError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'TunError';
  }
}

export function findAddon(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'build', 'Release', 'mptun_tun.node');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new TunError('ENOADDON', 'the TUN addon is not built: run `npm install` (it runs node-gyp) in the mptun folder');
}

let addon: NativeAddon | undefined;
function loadAddon(): NativeAddon {
  if (!addon) addon = createRequire(import.meta.url)(findAddon()) as NativeAddon;
  return addon;
}

export interface TunOptions {
  /** Device name (at most 15 bytes; may hold `%d`). */
  name: string;
  /** Open with IFF_VNET_HDR: every packet read or written starts with a 10-byte virtio-net header. */
  vnetHdr?: boolean;
  /**
   * With vnetHdr: offloads to enable (TUNSETOFFLOAD). `true` enables CSUM, TSO4, TSO6 and
   * TSO_ECN, so the kernel hands us 64 KiB super-segments and accepts them from us.
   */
  offload?: boolean;
  /** Packets drained per wake-up at most (default 256). */
  maxBatch?: number;
  /** Bytes of the receive arena (default: room for maxBatch MTU-size packets, at least 2 × 64 KiB). */
  arenaBytes?: number;
}

export interface PacketBatch {
  readonly arena: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly count: number;
}

export class Tun {
  readonly name: string;
  readonly vnetHdr: boolean;
  private readonly dev: NativeTunDevice;
  private readonly batch: { arena: Buffer; offsets: Uint32Array; lengths: Uint32Array; count: number };
  private closed = false;

  private constructor(dev: NativeTunDevice, vnetHdr: boolean) {
    this.dev = dev;
    this.name = dev.name;
    this.vnetHdr = vnetHdr;
    this.batch = { arena: dev.arena, offsets: dev.offsets, lengths: dev.lengths, count: 0 };
  }

  /** Opens (creates) a TUN device. Throws TunError with a clear message when it cannot. */
  static open(options: TunOptions): Tun {
    const native = loadAddon();
    const vnet = options.vnetHdr ?? false;
    const maxBatch = options.maxBatch ?? 256;
    const arenaBytes = options.arenaBytes ?? (vnet && options.offload ? 64 * (native.MAX_PACKET + 8) : Math.max(maxBatch * 2048, 2 * (native.MAX_PACKET + 8)));
    let dev: NativeTunDevice;
    try {
      dev = new native.TunDevice(options.name, vnet, maxBatch, arenaBytes);
    } catch (e) {
      throw asTunError(e);
    }
    const tun = new Tun(dev, vnet);
    if (vnet && options.offload) {
      try {
        dev.setOffload(native.TUN_F_CSUM | native.TUN_F_TSO4 | native.TUN_F_TSO6 | native.TUN_F_TSO_ECN);
      } catch (e) {
        dev.close();
        throw asTunError(e);
      }
    }
    return tun;
  }

  /** Bytes of virtio-net header before every packet (0 without vnetHdr). */
  get headerLen(): number {
    return this.vnetHdr ? VNET_HDR_LEN : 0;
  }

  /** Starts reading: `onBatch` is called once per batch drained from the device. */
  start(onBatch: (batch: PacketBatch) => void): void {
    const batch = this.batch;
    this.dev.start((count: number) => {
      batch.count = count;
      onBatch(batch);
    });
  }

  stop(): void {
    this.dev.stop();
  }

  /** Reads what is there now, without waiting (for callers that poll themselves). */
  readBatch(): PacketBatch {
    this.batch.count = this.dev.readBatch();
    return this.batch;
  }

  /** Writes one packet (with its vnet header when vnetHdr). False when the device would block. */
  write(packet: Buffer): boolean {
    return this.dev.write(packet);
  }

  /** Writes `count` packets held in `buf` at `offsets`/`lengths`; returns how many it took. */
  writeBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    return this.dev.writeBatch(buf, offsets, lengths, count);
  }

  stats(): TunStats {
    return this.dev.stats();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dev.close();
  }
}

function asTunError(e: unknown): TunError {
  if (e instanceof TunError) return e;
  if (e instanceof Error) {
    const code = (e as Error & { code?: unknown }).code;
    return new TunError(typeof code === 'string' ? code : 'ETUN', e.message);
  }
  return new TunError('ETUN', String(e));
}
