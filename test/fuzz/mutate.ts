// The fuzzer's mutator: takes a well-formed packet a scripted peer would send and makes it
// wrong in one of the ways a network (or an attacker) can, most of the time with its checksums
// computed again so that the mutation reaches the protocol logic, sometimes with them wrong.
//
// Structured mutations work on the parsed segment (TcpRepr + MPTCP options) and emit it again
// with the project's own codecs; raw mutations work on the bytes (bit flips, truncation, option
// kinds/lengths/subtypes overwritten). Everything is drawn from one seeded Rng: a case replays.
import { Rng } from '../sim/rng.js';
import { IPPROTO_TCP } from '../../src/ip/ipv4.js';
import { internetChecksum } from '../../src/ip/checksum.js';
import { ipPseudoHeaderSum } from '../../src/ip/packet.js';
import { parseIpAddress } from '../../src/ip/address.js';
import {
  TCP_FLAG_ACK, TCP_FLAG_FIN, TCP_FLAG_RST, TCP_FLAG_SYN, TCP_OFF_CHECKSUM, emitIpTcp, tcpPacketLen, type TcpRepr,
} from '../../src/tcp/segment.js';
import { emitMptcpOptionBuffer, type MptcpOption } from '../../src/mptcp/options.js';
import { addAddrHmac, keyToToken } from '../../src/mptcp/crypto.js';
import { parseSegment } from '../mptcp/simhost.js';

/** What the fuzzer has seen on the wire (keys, tokens, DSNs): mutations use it to be nearly right. */
export class Knowledge {
  readonly keys: bigint[] = [];
  readonly dsns: bigint[] = [];
  readonly seqs: number[] = [];
  /** Key pairs of one connection (a third ACK's sender and receiver keys), both orders. */
  readonly pairs: Array<[bigint, bigint]> = [];
  /** Addresses the world owns (for ADD_ADDR, of both families). */
  addresses: Buffer[] = [];

  private add<T>(list: T[], x: T, max = 32): void {
    if (list.includes(x)) return;
    list.push(x);
    if (list.length > max) list.shift();
  }

  /** Learns from a packet (either direction). */
  learn(packet: Buffer): void {
    const seg = parseSegment(packet);
    if (!seg) return;
    this.add(this.seqs, seg.tcp.seq);
    this.add(this.seqs, seg.tcp.ack);
    for (const o of seg.mptcp) {
      if (o.type === 'mp_capable') {
        if (o.senderKey !== undefined) this.add(this.keys, o.senderKey);
        if (o.receiverKey !== undefined) this.add(this.keys, o.receiverKey);
        if (o.senderKey !== undefined && o.receiverKey !== undefined && !this.pairs.some(([a, b]) => a === o.senderKey && b === o.receiverKey)) {
          this.pairs.push([o.senderKey, o.receiverKey], [o.receiverKey, o.senderKey]);
          if (this.pairs.length > 32) this.pairs.splice(0, 2);
        }
      } else if (o.type === 'dss') {
        if (o.dataAck !== undefined) this.add(this.dsns, o.dataAck);
        if (o.mapping) this.add(this.dsns, o.mapping.dsn);
      }
    }
  }

  key(rng: Rng): bigint {
    return this.keys.length > 0 && rng.chance(0.8) ? pick(rng, this.keys) : randomU64(rng);
  }

  token(rng: Rng): number {
    return this.keys.length > 0 && rng.chance(0.8) ? keyToToken(pick(rng, this.keys)) : rng.nextU32();
  }

  dsn(rng: Rng): bigint {
    return this.dsns.length > 0 && rng.chance(0.8) ? nearBig(rng, pick(rng, this.dsns)) : boundaryBig(rng);
  }
}

const MASK64 = (1n << 64n) - 1n;

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

function randomU64(rng: Rng): bigint {
  return (BigInt(rng.nextU32()) << 32n) | BigInt(rng.nextU32());
}

/** A 32-bit value near `x` or near a wrap boundary. */
function near32(rng: Rng, x: number): number {
  switch (rng.int(6)) {
    case 0: return (x + rng.int(64)) >>> 0;
    case 1: return (x - rng.int(64)) >>> 0;
    case 2: return (x + (rng.int(2) ? 1 : -1) * rng.int(1 << 20)) >>> 0;
    case 3: return (0xffffffff - rng.int(4096)) >>> 0;
    case 4: return (x + 0x80000000 + rng.int(3) - 1) >>> 0;
    default: return rng.nextU32();
  }
}

function nearBig(rng: Rng, x: bigint): bigint {
  switch (rng.int(6)) {
    case 0: return (x + BigInt(rng.int(4096))) & MASK64;
    case 1: return (x - BigInt(rng.int(4096))) & MASK64;
    case 2: return (x + (1n << 32n)) & MASK64;
    case 3: return (x ^ (1n << BigInt(rng.int(64)))) & MASK64;
    default: return boundaryBig(rng);
  }
}

function boundaryBig(rng: Rng): bigint {
  const base = pick(rng, [0n, 1n << 32n, 1n << 63n, MASK64 + 1n]);
  return (base + BigInt(rng.int(8192)) - 4096n) & MASK64;
}

/** An MPTCP option of a random subtype, with fields drawn from what the fuzzer knows or at random. */
export function randomMptcpOption(rng: Rng, k: Knowledge, ctx: { syn: boolean }): MptcpOption {
  const flags = () => ({ checksumRequired: rng.chance(0.2), extensibility: rng.chance(0.1), noMoreSubflowAddr: rng.chance(0.2), hmacSha256: rng.chance(0.9) });
  switch (rng.int(12)) {
    case 0: {
      const form = rng.int(4);
      return {
        type: 'mp_capable', version: rng.chance(0.9) ? 1 : rng.int(16), flags: flags(),
        ...(form >= 1 ? { senderKey: k.key(rng) } : {}),
        ...(form >= 2 ? { receiverKey: k.key(rng) } : {}),
        ...(form >= 3 ? { dataLen: rng.int(0x10000), ...(rng.chance(0.5) ? { checksum: rng.int(0x10000) } : {}) } : {}),
      };
    }
    case 1: return { type: 'mp_join_syn', backup: rng.chance(0.3), addressId: rng.int(256), receiverToken: k.token(rng), senderNonce: rng.nextU32() };
    case 2: return { type: 'mp_join_synack', backup: rng.chance(0.3), addressId: rng.int(256), truncatedHmac: randomU64(rng), senderNonce: rng.nextU32() };
    case 3: {
      const hmac = Buffer.alloc(20);
      for (let i = 0; i < 20; i++) hmac[i] = rng.int(256);
      return { type: 'mp_join_ack', hmac };
    }
    case 4:
    case 5: {
      const dss: MptcpOption = { type: 'dss', dataFin: rng.chance(0.3) };
      if (rng.chance(0.8)) {
        dss.dataAck = k.dsn(rng);
        dss.dataAck8 = rng.chance(0.7);
        if (!dss.dataAck8) dss.dataAck &= 0xffffffffn;
      }
      if (rng.chance(0.6)) {
        const dsn8 = rng.chance(0.7);
        const dsn = k.dsn(rng);
        dss.mapping = {
          dsn: dsn8 ? dsn : dsn & 0xffffffffn, dsn8, subflowSeq: rng.chance(0.5) ? rng.int(1 << 20) : rng.nextU32(),
          dataLen: pick(rng, [0, 1, rng.int(1460), rng.int(0x10000), 0xffff]),
          ...(rng.chance(0.2) ? { checksum: rng.int(0x10000) } : {}),
        };
      }
      return dss;
    }
    case 6: {
      const addresses = k.addresses.length > 0 ? k.addresses : [parseIpAddress('192.0.2.11').bytes];
      const addr = rng.chance(0.2) ? parseIpAddress(rng.chance(0.5) ? '2001:db8::11' : '10.9.8.7').bytes : pick(rng, addresses);
      const id = rng.int(256);
      const port = rng.chance(0.7) ? 0 : pick(rng, [80, rng.int(0x10000)]);
      const echo = rng.chance(0.2);
      let hmac: bigint | undefined;
      if (!echo) {
        const [a, b] = k.pairs.length > 0 && rng.chance(0.8) ? pick(rng, k.pairs) : [k.key(rng), k.key(rng)];
        hmac = rng.chance(0.8) ? addAddrHmac(a, b, id, addr, port) : randomU64(rng);
      }
      return { type: 'add_addr', echo, addressId: id, address: addr, port, ...(hmac !== undefined ? { hmac } : {}) } as MptcpOption;
    }
    case 7: {
      const ids: number[] = [];
      for (let i = 0, n = 1 + rng.int(4); i < n; i++) ids.push(rng.int(256));
      return { type: 'remove_addr', addressIds: ids };
    }
    case 8: return { type: 'mp_prio', backup: rng.chance(0.5), ...(rng.chance(0.3) ? { addressId: rng.int(256) } : {}) } as MptcpOption;
    case 9: return { type: 'mp_fail', dsn: k.dsn(rng) };
    case 10: return { type: 'mp_fastclose', receiverKey: k.key(rng) };
    default: return { type: 'mp_tcprst', reason: rng.int(8), transient: rng.chance(0.5), flags: 0 } as MptcpOption;
  }
  void ctx;
}

export interface MutationResult {
  packets: Buffer[];
  /** What was done, for the replay trace. */
  what: string;
}

/** Computes the IPv4 header checksum and the TCP checksum again (as far as the bytes allow). */
export function fixChecksums(p: Buffer, fixLength: boolean): void {
  if (p.length < 1) return;
  const v = p[0]! >>> 4;
  let l4: number;
  let end: number;
  if (v === 4) {
    if (p.length < 20) return;
    l4 = (p[0]! & 0x0f) * 4;
    if (l4 < 20 || l4 > p.length) return;
    if (fixLength) p.writeUInt16BE(p.length, 2);
    p.writeUInt16BE(0, 10);
    p.writeUInt16BE(internetChecksum(p, 0, l4), 10);
    end = Math.min(p.readUInt16BE(2), p.length);
  } else if (v === 6) {
    if (p.length < 40) return;
    if (fixLength) p.writeUInt16BE(p.length - 40, 4);
    l4 = 40;
    end = Math.min(40 + p.readUInt16BE(4), p.length);
  } else {
    return;
  }
  if (end < l4 + 18) return;
  p.writeUInt16BE(0, l4 + TCP_OFF_CHECKSUM);
  p.writeUInt16BE(internetChecksum(p, l4, end, ipPseudoHeaderSum(v as 4 | 6, p, IPPROTO_TCP, end - l4)), l4 + TCP_OFF_CHECKSUM);
}

function emit(src: Buffer, dst: Buffer, repr: TcpRepr, mptcp: MptcpOption[]): Buffer {
  repr.options = { ...repr.options, mptcp: mptcp.map((o) => emitMptcpOptionBuffer(o)) };
  const ipVersion = src.length === 16 ? 6 : 4;
  const buf = Buffer.alloc(tcpPacketLen(repr, ipVersion));
  emitIpTcp(buf, 0, { ipVersion, src, dst, ttl: 64 }, repr, { checksum: 'full' });
  return buf;
}

/** An IPv4 address as an IPv6 one of the other family (so the packet goes to nobody's connection, or somebody's else). */
function otherFamily(a: Buffer, rng: Rng): Buffer {
  if (a.length === 4) return rng.chance(0.5) ? Buffer.concat([Buffer.from('00000000000000000000ffff', 'hex'), a]) : parseIpAddress('2001:db8::10').bytes;
  return a.subarray(12, 16);
}

/**
 * Mutates `packet` (a well-formed IP+TCP packet from a scripted peer). Returns the packets to
 * deliver instead (none: dropped; two: duplicated or an extra crafted one).
 */
export function mutate(rng: Rng, k: Knowledge, packet: Buffer): MutationResult {
  const seg = parseSegment(packet);
  let src = seg ? parseIpAddress(seg.src).bytes : null;
  let dst = seg ? parseIpAddress(seg.dst).bytes : null;
  let out: Buffer;
  let what: string;
  const structured = seg !== null && rng.chance(0.7);
  if (structured) {
    const repr: TcpRepr = { ...seg.tcp, options: { ...seg.tcp.options } };
    let opts = [...seg.mptcp];
    const n = 1 + (rng.chance(0.3) ? rng.int(3) : 0);
    const done: string[] = [];
    for (let i = 0; i < n; i++) {
      const m = rng.int(15);
      switch (m) {
        case 0: repr.seq = near32(rng, repr.seq); done.push('seq'); break;
        case 1: repr.ack = near32(rng, repr.ack); done.push('ack'); break;
        case 2: repr.flags = rng.chance(0.5) ? rng.int(256) : repr.flags ^ pick(rng, [TCP_FLAG_SYN, TCP_FLAG_FIN, TCP_FLAG_RST, TCP_FLAG_ACK, 0x20, 0x40, 0x80]); done.push('flags'); break;
        case 3: repr.window = pick(rng, [0, 1, rng.int(0x10000), 0xffff]); done.push('window'); break;
        case 4: {
          // the DSS fields shifted near a boundary
          opts = opts.map((o) => {
            if (o.type !== 'dss') return o;
            const d = { ...o, ...(o.mapping ? { mapping: { ...o.mapping } } : {}) };
            if (d.dataAck !== undefined && rng.chance(0.6)) d.dataAck = d.dataAck8 ? nearBig(rng, d.dataAck) : nearBig(rng, d.dataAck) & 0xffffffffn;
            if (d.mapping && rng.chance(0.6)) {
              const x = rng.int(4);
              if (x === 0) d.mapping.dsn = d.mapping.dsn8 ? nearBig(rng, d.mapping.dsn) : nearBig(rng, d.mapping.dsn) & 0xffffffffn;
              else if (x === 1) d.mapping.subflowSeq = near32(rng, d.mapping.subflowSeq);
              else if (x === 2) d.mapping.dataLen = pick(rng, [0, 1, d.mapping.dataLen + 1, Math.max(0, d.mapping.dataLen - 1), 0xffff]);
              else d.mapping.checksum = rng.int(0x10000);
            }
            if (rng.chance(0.2)) d.dataFin = !d.dataFin;
            return d;
          });
          done.push('dss-fields');
          break;
        }
        case 5:
        case 6: {
          // an extra MPTCP option of any subtype (or one in place of what was there)
          const o = randomMptcpOption(rng, k, { syn: (repr.flags & TCP_FLAG_SYN) !== 0 });
          if (rng.chance(0.3)) opts = [o];
          else opts.push(o);
          // RFC 8684 §3.6: MP_TCPRST rides on a RST; an in-window one reaches the logic
          if (o.type === 'mp_tcprst' && rng.chance(0.7)) {
            repr.flags = TCP_FLAG_RST | TCP_FLAG_ACK;
            repr.payload = Buffer.alloc(0);
          }
          done.push(`opt:${o.type}`);
          break;
        }
        case 7: {
          // keys, tokens, HMACs made wrong
          opts = opts.map((o) => {
            switch (o.type) {
              case 'mp_capable': return { ...o, ...(o.senderKey !== undefined ? { senderKey: k.key(rng) } : {}), ...(o.receiverKey !== undefined && rng.chance(0.5) ? { receiverKey: k.key(rng) } : {}) };
              case 'mp_join_syn': return { ...o, receiverToken: k.token(rng) };
              case 'mp_join_synack': return { ...o, truncatedHmac: o.truncatedHmac ^ 1n };
              case 'mp_join_ack': { const h = Buffer.from(o.hmac); h[rng.int(h.length)]! ^= 1 << rng.int(8); return { ...o, hmac: h }; }
              case 'mp_fastclose': return { ...o, receiverKey: k.key(rng) };
              default: return o;
            }
          });
          done.push('crypto');
          break;
        }
        case 8: opts = []; done.push('strip-mptcp'); break;
        case 9: {
          const o = repr.options;
          const x = rng.int(5);
          if (x === 0) o.sackBlocks = Array.from({ length: 1 + rng.int(4) }, () => {
            const l = rng.chance(0.7) ? near32(rng, repr.ack) : rng.nextU32();
            return { start: l, end: (l + rng.int(1 << 16)) >>> 0 };
          });
          else if (x === 1) o.windowScale = rng.int(20);
          else if (x === 2) o.timestamps = { tsVal: rng.nextU32(), tsEcr: rng.chance(0.5) ? 0 : rng.nextU32() };
          else if (x === 3) o.mss = pick(rng, [0, 1, 64, 536, 1460, 9000, 0xffff]);
          else o.sackPermitted = true;
          done.push('tcp-option');
          break;
        }
        case 10: {
          // payload cut or grown
          const p = repr.payload;
          if (p.length > 0 && rng.chance(0.5)) repr.payload = p.subarray(0, rng.int(p.length));
          else {
            const extra = Buffer.alloc(rng.int(rng.chance(0.2) ? 2000 : 200));
            for (let j = 0; j < extra.length; j++) extra[j] = rng.int(256);
            repr.payload = Buffer.concat([p, extra]);
          }
          done.push('payload');
          break;
        }
        case 11: {
          if (src && dst && rng.chance(0.5)) {
            src = otherFamily(src, rng);
            dst = otherFamily(dst, rng);
            done.push('family');
          } else {
            repr.srcPort = rng.chance(0.5) ? repr.srcPort ^ 1 : rng.int(0x10000);
            done.push('port');
          }
          break;
        }
        case 12: opts.reverse(); if (opts.length < 2) opts.push(...opts); done.push('opt-order'); break;
        case 13: repr.urgent = rng.int(0x10000); repr.flags |= 0x20; done.push('urgent'); break;
        default: {
          // a duplicate of a DSS with the DATA_FIN set/cleared, or an ACK-only copy
          repr.payload = Buffer.alloc(0);
          done.push('no-payload');
        }
      }
    }
    try {
      out = emit(src!, dst!, repr, opts);
    } catch {
      // the representation does not fit (40 option bytes): emit what fits
      try {
        out = emit(src!, dst!, { ...repr, options: { ...repr.options, sackBlocks: undefined, timestamps: undefined } }, opts.slice(-1));
      } catch {
        out = Buffer.from(packet);
      }
      done.push('trimmed');
    }
    what = done.join(',');
  } else {
    out = Buffer.from(packet);
    const m = rng.int(5);
    if (m === 0) {
      for (let i = 0, n = 1 + rng.int(8); i < n; i++) out[rng.int(out.length)]! ^= 1 << rng.int(8);
      what = 'bitflips';
    } else if (m === 1) {
      out = out.subarray(0, rng.int(out.length + 1));
      what = 'truncate';
    } else if (m === 2) {
      // the TCP option area: kinds, lengths and MPTCP subtypes overwritten
      const l4 = out[0]! >>> 4 === 6 ? 40 : (out[0]! & 0x0f) * 4;
      const hl = out.length > l4 + 12 ? (out[l4 + 12]! >>> 4) * 4 : 20;
      if (hl > 20 && out.length >= l4 + hl) {
        const at = l4 + 20 + rng.int(hl - 20);
        out[at] = pick(rng, [0, 1, 2, 3, 4, 5, 8, 30, 30, 30, rng.int(256), (rng.int(16) << 4) | rng.int(16)]);
      } else if (out.length > l4 + 12) {
        out[l4 + 12] = (rng.int(16) << 4) | (out[l4 + 12]! & 0x0f);
      }
      what = 'option-bytes';
    } else if (m === 3) {
      const extra = Buffer.alloc(rng.int(64));
      for (let j = 0; j < extra.length; j++) extra[j] = rng.int(256);
      out = Buffer.concat([out, extra]);
      what = 'trailing-bytes';
    } else {
      // the data offset or the IP header length off
      if (out.length > 0) out[0] = (out[0]! & 0xf0) | rng.int(16);
      what = 'header-length';
    }
  }
  // checksums right most of the time, so that the mutation reaches the logic
  const fix = rng.chance(0.9);
  if (fix) fixChecksums(out, rng.chance(0.8));
  else what += ',bad-checksum';
  const packets = [out];
  if (rng.chance(0.1)) {
    packets.push(Buffer.from(out));
    what += ',dup';
  }
  return { packets, what };
}
