// mptun's Cookie TLV value: good once, for one destination, one key and a ±30 s window; every
// refusal counted, with the Error code RFC 8803 gives it (Missing Cookie 3, Not Authorized 32).
import test from 'ava';
import { mkdtemp, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  COOKIE_LEN,
  COOKIE_WINDOW_S,
  CookieVerifier,
  makeCookie,
} from '../../src/convert/cookie.js';
import { CONVERT_ERR_MISSING_COOKIE, CONVERT_ERR_NOT_AUTHORIZED, CONVERT_ERR_RESOURCE_EXCEEDED } from '../../src/convert/message.js';
import { cookieError } from '../../src/server/policy.js';
import { generateKeyFile, readKeyFile } from '../../src/server/key.js';

const KEY = Buffer.alloc(32, 0x11);
const OTHER_KEY = Buffer.alloc(32, 0x22);
const NOW = 1_800_000_000;
const nonce = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeUInt32BE(n, 4); return b; };

test('a good cookie is accepted once, then it is a replay', (t) => {
  const v = new CookieVerifier(KEY);
  const c = makeCookie(KEY, NOW, nonce(1), '192.0.2.1', 80);
  t.is(c.length, COOKIE_LEN);
  t.is(v.verify(NOW, c, '192.0.2.1', 80), null);
  t.is(v.verify(NOW + 1, c, '192.0.2.1', 80), 'cookieReplayed');
  t.is(cookieError('cookieReplayed'), CONVERT_ERR_NOT_AUTHORIZED);
  t.like(v.counters.snapshot(), { cookieAccepted: 1, cookieReplayed: 1 });
});

test('the same destination given as IPv4 text, IPv4 bytes or IPv4-mapped bytes is the same', (t) => {
  const v = new CookieVerifier(KEY);
  const mapped = Buffer.from('00000000000000000000ffffc0000201', 'hex');
  t.is(v.verify(NOW, makeCookie(KEY, NOW, nonce(2), '192.0.2.1', 80), mapped, 80), null);
  t.is(v.verify(NOW, makeCookie(KEY, NOW, nonce(3), mapped, 80), Uint8Array.of(192, 0, 2, 1), 80), null);
});

test('refusals: wrong key, other address, other port, missing, malformed, altered', (t) => {
  const v = new CookieVerifier(KEY);
  t.is(v.verify(NOW, makeCookie(OTHER_KEY, NOW, nonce(1), '192.0.2.1', 80), '192.0.2.1', 80), 'cookieBadMac');
  t.is(v.verify(NOW, makeCookie(KEY, NOW, nonce(2), '192.0.2.1', 80), '192.0.2.2', 80), 'cookieBadMac');
  t.is(v.verify(NOW, makeCookie(KEY, NOW, nonce(3), '192.0.2.1', 80), '192.0.2.1', 443), 'cookieBadMac');
  t.is(v.verify(NOW, null, '192.0.2.1', 80), 'cookieMissing');
  t.is(v.verify(NOW, new Uint8Array(8), '192.0.2.1', 80), 'cookieMalformed');
  const altered = makeCookie(KEY, NOW, nonce(4), '2001:db8::1', 80);
  altered[31] ^= 1;
  t.is(v.verify(NOW, altered, '2001:db8::1', 80), 'cookieBadMac');
  const windowMoved = makeCookie(KEY, NOW, nonce(5), '2001:db8::1', 80);
  windowMoved.writeUInt32BE(windowMoved.readUInt32BE(4) + 1, 4);
  t.is(v.verify(NOW, windowMoved, '2001:db8::1', 80), 'cookieBadMac', 'the window is under the MAC');
  t.like(v.counters.snapshot(), { cookieBadMac: 5, cookieMissing: 1, cookieMalformed: 1, cookieAccepted: 0 });
  t.is(cookieError('cookieMissing'), CONVERT_ERR_MISSING_COOKIE);
  t.is(cookieError('cookieBadMac'), CONVERT_ERR_NOT_AUTHORIZED);
  t.is(cookieError('cookieMalformed'), CONVERT_ERR_NOT_AUTHORIZED);
});

test('the window: ±30 s accepted, older or newer refused as stale', (t) => {
  const v = new CookieVerifier(KEY);
  t.is(v.verify(NOW, makeCookie(KEY, NOW - 30, nonce(1), '192.0.2.1', 80), '192.0.2.1', 80), null);
  t.is(v.verify(NOW, makeCookie(KEY, NOW + 30, nonce(2), '192.0.2.1', 80), '192.0.2.1', 80), null);
  t.is(v.verify(NOW, makeCookie(KEY, NOW - 5 * COOKIE_WINDOW_S, nonce(3), '192.0.2.1', 80), '192.0.2.1', 80), 'cookieStale');
  t.is(v.verify(NOW, makeCookie(KEY, NOW + 5 * COOKIE_WINDOW_S, nonce(4), '192.0.2.1', 80), '192.0.2.1', 80), 'cookieStale');
  t.is(cookieError('cookieStale'), CONVERT_ERR_NOT_AUTHORIZED);
});

test('the replay cache is bounded: old windows are forgotten, a full cache refuses with Resource Exceeded', (t) => {
  const v = new CookieVerifier(KEY, 3);
  for (let i = 0; i < 3; i++) t.is(v.verify(NOW, makeCookie(KEY, NOW, nonce(i), '192.0.2.1', 80), '192.0.2.1', 80), null);
  t.is(v.cached, 3);
  t.is(v.verify(NOW, makeCookie(KEY, NOW, nonce(9), '192.0.2.1', 80), '192.0.2.1', 80), 'cookieReplayCacheFull');
  t.is(cookieError('cookieReplayCacheFull'), CONVERT_ERR_RESOURCE_EXCEEDED);
  // A minute later the old nonces can no longer be accepted anyway: they are forgotten.
  const later = NOW + 60;
  t.is(v.verify(later, makeCookie(KEY, later, nonce(10), '192.0.2.1', 80), '192.0.2.1', 80), null);
  t.is(v.cached, 1);
});

test('key file: --genkey writes 64 hex digits with mode 0600, refuses to overwrite; a readable-by-others file is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mptcv-key-'));
  try {
    const path = join(dir, 'key');
    await generateKeyFile(path);
    t.is((await stat(path)).mode & 0o777, 0o600);
    const key = await readKeyFile(path);
    t.is(key.length, 32);
    await t.throwsAsync(generateKeyFile(path), { name: 'KeyFileError', message: /exists already/ });
    t.deepEqual(await readKeyFile(path), key, 'the key is unchanged');
    await chmod(path, 0o644);
    await t.throwsAsync(readKeyFile(path), { message: /chmod 600/ });
    const bad = join(dir, 'bad');
    await writeFile(bad, 'not a key\n', { mode: 0o600 });
    await t.throwsAsync(readKeyFile(bad), { message: /hex digits/ });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
