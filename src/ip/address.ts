// Addresses and prefixes, text <-> bytes, on the `ip-address` package. Parsing is for the
// configuration path and throws `IpAddressError` with a message fit for a person; the byte
// predicates at the end are for the packet path and neither throw nor allocate.

import { Address4, Address6 } from 'ip-address';
import { IPV4_ADDRESS_LEN } from './ipv4.js';
import { IPV6_ADDRESS_LEN } from './ipv6.js';

export type IpFamily = 4 | 6;

/** A configuration value that is not an address or prefix. `input` is the text as given. */
export class IpAddressError extends Error {
  override readonly name = 'IpAddressError';
  readonly input: string;
  constructor(input: string, message: string) {
    super(message);
    this.input = input;
  }
}

/** An address as its family and its bytes in network order (4 or 16 of them). */
export interface IpAddress {
  family: IpFamily;
  bytes: Buffer;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function rejectSuffixAndZone(text: string, what: string): void {
  if (text.includes('/')) throw new IpAddressError(text, `${JSON.stringify(text)} is a prefix, not an ${what} address: drop the "/length"`);
  if (text.includes('%')) throw new IpAddressError(text, `${JSON.stringify(text)}: zone indices ("%eth0") are not supported`);
}

/** Parses dotted-quad text ("192.0.2.1") to 4 bytes. */
export function parseIpv4Address(text: string): Buffer {
  rejectSuffixAndZone(text, 'IPv4');
  let a: Address4;
  try {
    a = new Address4(text);
  } catch (e) {
    throw new IpAddressError(text, `${JSON.stringify(text)} is not an IPv4 address: ${reason(e)}`);
  }
  return Buffer.from(a.toArray());
}

/** Parses IPv6 text ("2001:db8::1", "::ffff:192.0.2.1") to 16 bytes. */
export function parseIpv6Address(text: string): Buffer {
  rejectSuffixAndZone(text, 'IPv6');
  let a: Address6;
  try {
    a = new Address6(text);
  } catch (e) {
    throw new IpAddressError(text, `${JSON.stringify(text)} is not an IPv6 address: ${reason(e)}`);
  }
  return Buffer.from(a.toUnsignedByteArray());
}

/** Parses an address of either family; the family follows from the text (a colon means IPv6). */
export function parseIpAddress(text: string): IpAddress {
  if (text.includes(':')) return { family: 6, bytes: parseIpv6Address(text) };
  if (/^[0-9]/.test(text)) return { family: 4, bytes: parseIpv4Address(text) };
  throw new IpAddressError(text, `${JSON.stringify(text)} is neither an IPv4 nor an IPv6 address`);
}

/** Parses dotted-quad text to the unsigned 32-bit number that `Ipv4Repr` uses. */
export function ipv4ToNumber(text: string): number {
  const b = parseIpv4Address(text);
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/** Formats an unsigned 32-bit IPv4 address as dotted-quad text. */
export function ipv4FromNumber(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** Formats the 4 bytes at `offset` as dotted-quad text. */
export function formatIpv4(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/**
 * Formats the 16 bytes at `offset` in the RFC 5952 text form (lower case, longest run of zero
 * groups compressed), with an IPv4-mapped address in mixed notation (RFC 5952 §5:
 * "::ffff:192.0.2.1").
 */
export function formatIpv6(bytes: Uint8Array, offset = 0): string {
  const b = Array.from(bytes.subarray(offset, offset + IPV6_ADDRESS_LEN));
  if (b.length !== IPV6_ADDRESS_LEN) throw new RangeError(`an IPv6 address needs 16 bytes, got ${b.length}`);
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false;
  if (mapped) return `::ffff:${formatIpv4(bytes, offset + 12)}`;
  return Address6.fromUnsignedByteArray(b).correctForm();
}

/** Formats 4 or 16 bytes as an address of the matching family. */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === IPV4_ADDRESS_LEN) return formatIpv4(bytes);
  if (bytes.length === IPV6_ADDRESS_LEN) return formatIpv6(bytes);
  throw new RangeError(`an address has 4 or 16 bytes, got ${bytes.length}`);
}

/** A CIDR prefix: the network address (host bits zero) and the prefix length. */
export class IpPrefix {
  readonly family: IpFamily;
  /** The network address, host bits cleared: 4 or 16 bytes. */
  readonly network: Buffer;
  readonly length: number;

  private constructor(family: IpFamily, network: Buffer, length: number) {
    this.family = family;
    this.network = network;
    this.length = length;
  }

  /**
   * Parses "198.18.0.0/15" or "2001:db8::/32"; a bare address is a host prefix (/32, /128).
   * Host bits set after the prefix ("10.1.2.3/8") are an error unless `strict` is false, in
   * which case they are cleared (as `ip route` would not, but a config file may mean it).
   */
  static parse(text: string, { strict = true }: { strict?: boolean } = {}): IpPrefix {
    const slash = text.indexOf('/');
    const addrText = slash < 0 ? text : text.slice(0, slash);
    const { family, bytes } = parseIpAddress(addrText);
    const max = family === 4 ? 32 : 128;
    let length = max;
    if (slash >= 0) {
      const lenText = text.slice(slash + 1);
      if (!/^[0-9]{1,3}$/.test(lenText) || Number(lenText) > max) {
        throw new IpAddressError(text, `${JSON.stringify(text)}: the prefix length must be a whole number from 0 to ${max}`);
      }
      length = Number(lenText);
      // Let ip-address validate the whole CIDR form as well.
      try {
        if (family === 4) new Address4(text);
        else new Address6(text);
      } catch (e) {
        throw new IpAddressError(text, `${JSON.stringify(text)} is not a prefix: ${reason(e)}`);
      }
    }
    const network = Buffer.from(bytes);
    maskInPlace(network, length);
    if (strict && !network.equals(bytes)) {
      const fixed = `${formatIpAddress(network)}/${length}`;
      throw new IpAddressError(text, `${JSON.stringify(text)} has host bits set after /${length}: the network is ${fixed}`);
    }
    return new IpPrefix(family, network, length);
  }

  /**
   * True when the address of family `family` whose bytes start at `bytes[offset]` is inside
   * the prefix. An address of the other family never is. No allocation: pass the packet and
   * the address offset (`prefix.contains(info.version, info.buffer, info.dstOffset)`).
   */
  contains(family: IpFamily, bytes: Uint8Array, offset = 0): boolean {
    if (family !== this.family) return false;
    const n = this.network;
    const whole = this.length >>> 3;
    for (let i = 0; i < whole; i++) if (bytes[offset + i] !== n[i]) return false;
    const rest = this.length & 7;
    if (rest === 0) return true;
    const mask = (0xff << (8 - rest)) & 0xff;
    return (bytes[offset + whole] & mask) === n[whole];
  }

  /** `contains` for an IPv4 address held as an unsigned 32-bit number. */
  containsV4(address: number): boolean {
    if (this.family !== 4) return false;
    if (this.length === 0) return true;
    const mask = (0xffffffff << (32 - this.length)) >>> 0;
    const net = ((this.network[0] << 24) | (this.network[1] << 16) | (this.network[2] << 8) | this.network[3]) >>> 0;
    return ((address & mask) >>> 0) === net;
  }

  /** `contains` for address text (config path: throws on bad text). */
  containsAddress(text: string): boolean {
    const { family, bytes } = parseIpAddress(text);
    return this.contains(family, bytes);
  }

  toString(): string {
    return `${formatIpAddress(this.network)}/${this.length}`;
  }
}

function maskInPlace(bytes: Buffer, length: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.min(8, Math.max(0, length - i * 8));
    bytes[i] &= (0xff << (8 - bits)) & 0xff;
  }
}

// Packet-path predicates on address bytes.

/** IPv4 multicast (224.0.0.0/4, RFC 5771) or limited broadcast (255.255.255.255, RFC 919). */
export function isIpv4MulticastOrBroadcast(bytes: Uint8Array, offset = 0): boolean {
  const first = bytes[offset];
  if ((first & 0xf0) === 0xe0) return true;
  return first === 255 && bytes[offset + 1] === 255 && bytes[offset + 2] === 255 && bytes[offset + 3] === 255;
}

/** 0.0.0.0 ("this host on this network", RFC 1122 §3.2.1.3). */
export function isIpv4Unspecified(bytes: Uint8Array, offset = 0): boolean {
  return (bytes[offset] | bytes[offset + 1] | bytes[offset + 2] | bytes[offset + 3]) === 0;
}

/** IPv6 multicast, ff00::/8 (RFC 4291 §2.7). */
export function isIpv6Multicast(bytes: Uint8Array, offset = 0): boolean {
  return bytes[offset] === 0xff;
}

/** The unspecified address :: (RFC 4291 §2.5.2). */
export function isIpv6Unspecified(bytes: Uint8Array, offset = 0): boolean {
  let or = 0;
  for (let i = 0; i < IPV6_ADDRESS_LEN; i++) or |= bytes[offset + i];
  return or === 0;
}

/**
 * A unicast address (4 or 16 bytes): neither unspecified nor multicast (nor, for IPv4, the
 * limited broadcast). What a TCP endpoint or a gateway may be.
 */
export function isUnicastAddress(bytes: Uint8Array): boolean {
  return bytes.length === 4
    ? !isIpv4MulticastOrBroadcast(bytes) && !isIpv4Unspecified(bytes)
    : !isIpv6Multicast(bytes) && !isIpv6Unspecified(bytes);
}

/** At most this many addresses are interned (a flood of SYNs from random sources does not grow the table). */
const INTERNED_MAX = 1024;
const interned = new Map<string, Buffer>();

/**
 * One shared Buffer per address (its bytes copied once): the endpoints of the connections that
 * stay (a held flow's app and destination addresses, the addresses a peer announced) share it,
 * where a Buffer each cost some 100 bytes; the few addresses a host talks with are interned, and
 * past INTERNED_MAX the copy is the caller's own. Address Buffers are never written.
 */
export function internAddress(bytes: Uint8Array): Buffer {
  const key = (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('latin1');
  const known = interned.get(key);
  if (known) return known;
  const copy = Buffer.from(bytes);
  if (interned.size < INTERNED_MAX) interned.set(key, copy);
  return copy;
}
