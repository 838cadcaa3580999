// The concentrator's refusals before it connects anything: forbidden destinations, and a
// client's share of pending and open connections.
import test from 'ava';
import { parseIpAddress, IpPrefix } from '../../src/ip/address.js';
import { ClientLimits, DESTINATION_REFUSALS, destinationError, DestinationPolicy } from '../../src/server/policy.js';

const check = (p: DestinationPolicy, text: string, port = 80): string | null => {
  const a = parseIpAddress(text);
  return p.check(a.family, a.bytes, port);
};

test('loopback, link-local, multicast, unspecified, port 0 are refused whatever --allow says', (t) => {
  const p = new DestinationPolicy({ allow: [IpPrefix.parse('0.0.0.0/0'), IpPrefix.parse('::/0')] });
  t.is(check(p, '127.0.0.1'), 'dstLoopback');
  t.is(check(p, '127.1.2.3'), 'dstLoopback');
  t.is(check(p, '::1'), 'dstLoopback');
  t.is(check(p, '169.254.1.1'), 'dstLinkLocal');
  t.is(check(p, 'fe80::1'), 'dstLinkLocal');
  t.is(check(p, '224.0.0.1'), 'dstMulticast');
  t.is(check(p, 'ff02::1'), 'dstMulticast');
  t.is(check(p, '0.0.0.0'), 'dstUnspecified');
  t.is(check(p, '::'), 'dstUnspecified');
  t.is(check(p, '192.0.2.1', 0), 'dstPortZero');
  t.is(check(p, '10.1.2.3'), null, 'allowed private');
});

test('a Connect to a multicast, broadcast or loopback address is Malformed Message (RFC 8803 §4.2.8); other refusals Not Authorized', (t) => {
  const p = new DestinationPolicy();
  t.is(check(p, '255.255.255.255'), 'dstMulticast');
  const codes = Object.fromEntries(DESTINATION_REFUSALS.map((r) => [r, destinationError(r)]));
  t.deepEqual(codes, { dstUnspecified: 32, dstLoopback: 1, dstLinkLocal: 32, dstMulticast: 1, dstOwnAddress: 32, dstPrivate: 32, dstPortZero: 32 });
});

test('private ranges are refused unless allowed; the server\'s own addresses unless allowed by themselves (/32)', (t) => {
  const own = [parseIpAddress('203.0.113.5'), parseIpAddress('10.9.0.1')];
  const p = new DestinationPolicy({ allow: [IpPrefix.parse('10.9.0.0/16')], ownAddresses: () => own });
  t.is(check(p, '10.1.2.3'), 'dstPrivate');
  t.is(check(p, '192.168.1.1'), 'dstPrivate');
  t.is(check(p, '172.20.0.1'), 'dstPrivate');
  t.is(check(p, 'fd00::1'), 'dstPrivate');
  t.is(check(p, '10.9.8.7'), null);
  t.is(check(p, '10.9.0.1'), 'dstOwnAddress');
  t.is(check(p, '203.0.113.5'), 'dstOwnAddress');
  t.is(check(p, '203.0.113.6'), null);
  t.is(check(p, '2001:db8::1'), null);
  // an --allow of exactly one own address (a service of the host the administrator offers)
  const q = new DestinationPolicy({ allow: [IpPrefix.parse('10.9.0.0/16'), IpPrefix.parse('203.0.113.5/32')], ownAddresses: () => own });
  t.is(check(q, '203.0.113.5'), null);
  t.is(check(q, '10.9.0.1'), 'dstOwnAddress', 'a wider allow does not open an own address');
});

test('client limits: pending and open per client, released on close', (t) => {
  const l = new ClientLimits(2, 3);
  t.is(l.admit('a'), null);
  t.is(l.admit('a'), null);
  t.is(l.admit('a'), 'limitPending');
  t.is(l.admit('b'), null, 'another client has its own share');
  l.opened('a');
  l.opened('a');
  t.is(l.admit('a'), null, 'two open, one pending');
  t.is(l.admit('a'), 'limitOpen', 'two open + one pending = 3');
  l.release('a', true);
  t.is(l.admit('a'), null);
  l.release('a', true);
  l.release('a', false);
  l.release('a', false);
  l.release('b', false);
  t.deepEqual(l.snapshot(), []);
});
