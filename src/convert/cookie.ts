// mptun's Cookie TLV value: proof that the client holds the concentrator's key, bound to one
// destination, one time window and one nonce, so that a cookie seen on the wire can neither be
// replayed nor pointed at another destination.
//
// RFC 8803 §4.2.7 leaves the Cookie's content to the Converter (the figure's "Opaque Value"); it
// names the errors: a Converter that requires cookies answers a Connect without one with Missing
// Cookie (3), and an invalid one with Not Authorized (32).
//
// Deliberately not the RFC's model: §4.2.7's Cookie is like the TCP Fast Open cookie, bound to the
// client's address to show that the client can receive what the Converter sends, and a Converter
// may hand it out in a Missing Cookie error. mptun's is a credential instead: it proves that the
// client holds the concentrator's key (so the concentrator is not an open proxy), is bound to the
// destination rather than to the client's address (a multipath client has several), and so is
// never handed out.
//
// The value (32 bytes, so the TLV is 9 words):
//
//    0                   1                   2                   3
//    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   | Cookie ver=1  |                  Zero (24 bits)               |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |          Time window (unix seconds / COOKIE_WINDOW_S)         |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |                        Nonce (64 bits)                        |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//   |   MAC: HMAC-SHA256(key, "mptun-convert-cookie" | ver | window |  |
//   |        nonce | dst address (16, IPv4-mapped) | dst port)      |
//   |        truncated to 128 bits                                  |
//   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Sans-IO: time (`nowS`, unix seconds) and the nonce are parameters.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CounterSet } from '../ip/counters.js';
import { connectAddressBytes } from './message.js';

export const COOKIE_VERSION = 1;
export const COOKIE_LEN = 32;
export const COOKIE_OFF_VERSION = 0;
export const COOKIE_OFF_WINDOW = 4;
export const COOKIE_OFF_NONCE = 8;
export const COOKIE_NONCE_LEN = 8;
export const COOKIE_OFF_MAC = 16;
export const COOKIE_MAC_LEN = 16;
/** Seconds per time window. */
export const COOKIE_WINDOW_S = 10;
/** Windows either side of the server's own that are still accepted (clock skew and SYN retries): ±30 s. */
export const COOKIE_WINDOW_SLACK = 3;
/** The key: 32 bytes. */
export const COOKIE_KEY_LEN = 32;
const LABEL = Buffer.from('mptun-convert-cookie');

export function cookieWindow(nowS: number): number {
  return Math.floor(nowS / COOKIE_WINDOW_S) >>> 0;
}

function mac(key: Uint8Array, window: number, nonce: Uint8Array, dst: Uint8Array, port: number): Buffer {
  const h = createHmac('sha256', key);
  const head = Buffer.alloc(1 + 4);
  head[0] = COOKIE_VERSION;
  head.writeUInt32BE(window, 1);
  const tail = Buffer.alloc(18);
  tail.set(connectAddressBytes(dst), 0);
  tail.writeUInt16BE(port, 16);
  h.update(LABEL).update(head).update(nonce).update(tail);
  return h.digest().subarray(0, COOKIE_MAC_LEN);
}

/** A cookie for `dst`:`port`, made at `nowS` with an 8-byte random `nonce`. */
export function makeCookie(key: Uint8Array, nowS: number, nonce: Uint8Array, dst: string | Uint8Array, port: number): Buffer {
  if (key.length !== COOKIE_KEY_LEN) throw new RangeError(`the key is ${COOKIE_KEY_LEN} bytes`);
  if (nonce.length !== COOKIE_NONCE_LEN) throw new RangeError(`the nonce is ${COOKIE_NONCE_LEN} bytes`);
  const dstBytes = connectAddressBytes(dst);
  const window = cookieWindow(nowS);
  const out = Buffer.alloc(COOKIE_LEN);
  out[COOKIE_OFF_VERSION] = COOKIE_VERSION;
  out.writeUInt32BE(window, COOKIE_OFF_WINDOW);
  out.set(nonce, COOKIE_OFF_NONCE);
  out.set(mac(key, window, nonce, dstBytes, port), COOKIE_OFF_MAC);
  return out;
}

/** Why a cookie was refused (each a counter). All answer Not Authorized (32) but `cookieMissing` (Missing Cookie, 3) and `cookieReplayCacheFull` (Resource Exceeded, 64). */
export const COOKIE_REFUSALS = [
  /** No Cookie TLV. */
  'cookieMissing',
  /** Not 32 bytes, or a cookie version other than 1. */
  'cookieMalformed',
  /** The MAC does not verify: another key, another destination or port, or altered bytes. */
  'cookieBadMac',
  /** The time window is older or newer than ±COOKIE_WINDOW_SLACK windows. */
  'cookieStale',
  /** The nonce was already used within the window. */
  'cookieReplayed',
  /** The replay cache is full of live nonces: the server cannot tell a replay, so it refuses. */
  'cookieReplayCacheFull',
] as const;
export type CookieRefusal = (typeof COOKIE_REFUSALS)[number];

export const COOKIE_COUNTER_NAMES = [...COOKIE_REFUSALS, 'cookieAccepted'] as const;
export type CookieCounterName = (typeof COOKIE_COUNTER_NAMES)[number];

export class CookieCounters extends CounterSet<CookieCounterName> {
  constructor() {
    super(COOKIE_COUNTER_NAMES);
  }
}

/**
 * Checks cookies with one key and remembers the nonces it accepted for as long as their window is
 * acceptable, so each cookie is good once. The cache holds at most `maxNonces`.
 */
export class CookieVerifier {
  readonly counters = new CookieCounters();
  /** window → the nonces (hex) accepted in it. */
  private readonly seen = new Map<number, Set<string>>();
  private size = 0;

  constructor(private readonly key: Uint8Array, private readonly maxNonces = 1 << 16) {
    if (key.length !== COOKIE_KEY_LEN) throw new RangeError(`the key is ${COOKIE_KEY_LEN} bytes`);
  }

  /** Nonces held now. */
  get cached(): number {
    return this.size;
  }

  /** `null` when the cookie is good for `dst`:`port` at `nowS` (and its nonce is now spent), else why not. */
  verify(nowS: number, cookie: Uint8Array | null, dst: Uint8Array | string, port: number): CookieRefusal | null {
    const r = this.check(nowS, cookie, dst, port);
    this.counters.increment(r ?? 'cookieAccepted');
    return r;
  }

  private check(nowS: number, cookie: Uint8Array | null, dst: Uint8Array | string, port: number): CookieRefusal | null {
    if (!cookie) return 'cookieMissing';
    if (cookie.length !== COOKIE_LEN || cookie[COOKIE_OFF_VERSION] !== COOKIE_VERSION) return 'cookieMalformed';
    const b = Buffer.from(cookie.buffer, cookie.byteOffset, cookie.length);
    const window = b.readUInt32BE(COOKIE_OFF_WINDOW);
    const nonce = b.subarray(COOKIE_OFF_NONCE, COOKIE_OFF_NONCE + COOKIE_NONCE_LEN);
    const expected = mac(this.key, window, nonce, connectAddressBytes(dst), port);
    if (!timingSafeEqual(expected, b.subarray(COOKIE_OFF_MAC, COOKIE_OFF_MAC + COOKIE_MAC_LEN))) return 'cookieBadMac';
    const now = cookieWindow(nowS);
    if (Math.abs(window - now) > COOKIE_WINDOW_SLACK) return 'cookieStale';
    this.expire(now);
    const hex = nonce.toString('hex');
    let set = this.seen.get(window);
    if (set?.has(hex)) return 'cookieReplayed';
    if (this.size >= this.maxNonces) return 'cookieReplayCacheFull';
    if (!set) this.seen.set(window, (set = new Set()));
    set.add(hex);
    this.size++;
    return null;
  }

  /** Forgets the nonces of windows that can no longer be accepted. */
  private expire(now: number): void {
    for (const [w, set] of this.seen) {
      if (w < now - COOKIE_WINDOW_SLACK) {
        this.size -= set.size;
        this.seen.delete(w);
      }
    }
  }
}
