import test from 'ava';
import {
  internAddress,
  formatIpAddress,
  formatIpv4,
  formatIpv6,
  ipv4FromNumber,
  ipv4ToNumber,
  IpAddressError,
  IpPrefix,
  isIpv4MulticastOrBroadcast,
  isIpv4Unspecified,
  isIpv6Multicast,
  isIpv6Unspecified,
  isUnicastAddress,
  parseIpAddress,
  parseIpv4Address,
  parseIpv6Address,
} from '../../src/ip/address.js';
import { bytes, KERNEL_PING4_REQUEST, KERNEL_PING6_REQUEST } from './fixtures.js';

test('parses addresses of both families to bytes in network order', (t) => {
  t.deepEqual(parseIpv4Address('192.0.2.1'), bytes('c0000201'));
  t.deepEqual(parseIpv6Address('2001:db8::1'), bytes('20010db8000000000000000000000001'));
  t.deepEqual(parseIpv6Address('2001:DB8::A'), bytes('20010db800000000000000000000000a'));
  t.deepEqual(parseIpv6Address('::ffff:192.0.2.1'), bytes('00000000000000000000ffffc0000201'));
  t.deepEqual(parseIpv6Address('::'), Buffer.alloc(16));
  t.deepEqual(parseIpAddress('198.18.1.2'), { family: 4, bytes: bytes('c6120102') });
  t.deepEqual(parseIpAddress('fe80::1'), { family: 6, bytes: bytes('fe800000000000000000000000000001') });
});

test('IPv4 addresses as unsigned 32-bit numbers', (t) => {
  t.is(ipv4ToNumber('192.0.2.1'), 0xc0000201);
  t.is(ipv4ToNumber('255.255.255.255'), 0xffffffff);
  t.is(ipv4FromNumber(0xc0000201), '192.0.2.1');
  t.is(ipv4FromNumber(0xffffffff), '255.255.255.255');
  t.is(ipv4FromNumber(0), '0.0.0.0');
});

test('formats bytes as text (RFC 5952 for IPv6, mixed notation for v4-mapped)', (t) => {
  t.is(formatIpv4(bytes(KERNEL_PING4_REQUEST), 12), '192.0.2.1');
  t.is(formatIpv6(bytes(KERNEL_PING6_REQUEST), 24), '2001:db8::2');
  t.is(formatIpAddress(bytes('20010db8000000010000000000000000')), '2001:db8:0:1::');
  t.is(formatIpAddress(bytes('00000000000000000000ffffc0000201')), '::ffff:192.0.2.1');
  t.is(formatIpAddress(Buffer.alloc(16)), '::');
  t.is(formatIpAddress(bytes('0a000001')), '10.0.0.1');
  t.throws(() => formatIpAddress(Buffer.alloc(5)), { instanceOf: RangeError });
  for (const text of ['2001:db8::1', 'fe80::bcfa:4aff:fe0d:edd8', '::1', '2001:db8:1:2:3:4:5:6', 'ff02::16']) {
    t.is(formatIpv6(parseIpv6Address(text)), text);
  }
});

test('bad input throws IpAddressError with a message that says what is wrong', (t) => {
  const cases: [string, RegExp][] = [
    ['1.2.3', /"1\.2\.3" is not an IPv4 address/],
    ['256.1.1.1', /not an IPv4 address/],
    ['01.2.3.4', /leading zeroes/],
    ['1.2.3.4/24', /is a prefix, not an IPv4 address/],
    ['2001:db8:::1', /not an IPv6 address/],
    ['fe80::1%eth0', /zone indices/],
    ['example.com', /neither an IPv4 nor an IPv6 address/],
    ['', /neither/],
  ];
  for (const [input, message] of cases) {
    const e = t.throws(() => parseIpAddress(input), { instanceOf: IpAddressError, message });
    t.is(e?.input, input);
  }
  t.throws(() => parseIpv6Address('1.2.3.4'), { instanceOf: IpAddressError });
  t.throws(() => parseIpv4Address('::1'), { instanceOf: IpAddressError });
});

test('prefixes: parse, print, and containment at byte and bit boundaries', (t) => {
  const p15 = IpPrefix.parse('198.18.0.0/15');
  t.is(p15.family, 4);
  t.is(p15.length, 15);
  t.is(p15.toString(), '198.18.0.0/15');
  t.true(p15.containsAddress('198.18.0.1'));
  t.true(p15.containsAddress('198.19.255.255'));
  t.false(p15.containsAddress('198.20.0.0'));
  t.false(p15.containsAddress('198.17.255.255'));
  t.false(p15.containsAddress('2001:db8::1'));

  const v6 = IpPrefix.parse('2001:db8::/32');
  t.is(v6.toString(), '2001:db8::/32');
  t.true(v6.containsAddress('2001:db8:ffff::1'));
  t.false(v6.containsAddress('2001:db9::1'));
  t.false(v6.containsAddress('192.0.2.1'));

  const odd = IpPrefix.parse('fc00::/7'); // RFC 4193 unique local
  t.true(odd.containsAddress('fc00::1'));
  t.true(odd.containsAddress('fdff::1'));
  t.false(odd.containsAddress('fe00::1'));

  const all = IpPrefix.parse('0.0.0.0/0');
  t.true(all.containsAddress('255.255.255.255'));
  t.true(all.containsV4(0));
  const host = IpPrefix.parse('192.0.2.1');
  t.is(host.toString(), '192.0.2.1/32');
  t.true(host.containsAddress('192.0.2.1'));
  t.false(host.containsAddress('192.0.2.2'));
  t.is(IpPrefix.parse('::1').toString(), '::1/128');
  t.is(IpPrefix.parse('2001:db8::1/127', { strict: false }).toString(), '2001:db8::/127');
});

test('containment on packet bytes, without allocation, and on numbers', (t) => {
  const ping4 = bytes(KERNEL_PING4_REQUEST);
  const ping6 = bytes(KERNEL_PING6_REQUEST);
  const doc4 = IpPrefix.parse('192.0.2.0/24');
  const doc6 = IpPrefix.parse('2001:db8::/64');
  t.true(doc4.contains(4, ping4, 16));
  t.false(doc4.contains(6, ping6, 24));
  t.true(doc6.contains(6, ping6, 24));
  t.false(IpPrefix.parse('192.0.3.0/24').contains(4, ping4, 16));
  t.true(doc4.containsV4(ipv4ToNumber('192.0.2.200')));
  t.false(doc4.containsV4(ipv4ToNumber('192.0.3.1')));
  t.false(doc6.containsV4(0));
  t.true(IpPrefix.parse('128.0.0.0/1').containsV4(0x80000000));
  t.false(IpPrefix.parse('128.0.0.0/1').containsV4(0x7fffffff));
});

test('prefixes with host bits set, or a bad length, are refused with the fix in the message', (t) => {
  t.throws(() => IpPrefix.parse('10.1.2.3/8'), { instanceOf: IpAddressError, message: /host bits set after \/8: the network is 10\.0\.0\.0\/8/ });
  t.throws(() => IpPrefix.parse('2001:db8::1/64'), { message: /the network is 2001:db8::\/64/ });
  t.throws(() => IpPrefix.parse('10.0.0.0/33'), { message: /from 0 to 32/ });
  t.throws(() => IpPrefix.parse('::/129'), { message: /from 0 to 128/ });
  t.throws(() => IpPrefix.parse('10.0.0.0/'), { message: /prefix length/ });
  t.throws(() => IpPrefix.parse('10.0.0.0/8x'), { message: /prefix length/ });
  t.throws(() => IpPrefix.parse('10.0.0/8'), { instanceOf: IpAddressError });
  t.is(IpPrefix.parse('10.1.2.3/8', { strict: false }).toString(), '10.0.0.0/8');
});

test('packet-path predicates for addresses we cannot answer from or to', (t) => {
  t.true(isIpv4MulticastOrBroadcast(parseIpv4Address('224.0.0.1')));
  t.true(isIpv4MulticastOrBroadcast(parseIpv4Address('239.255.255.255')));
  t.true(isIpv4MulticastOrBroadcast(parseIpv4Address('255.255.255.255')));
  t.false(isIpv4MulticastOrBroadcast(parseIpv4Address('192.0.2.255')));
  t.false(isIpv4MulticastOrBroadcast(parseIpv4Address('240.0.0.1')));
  t.true(isIpv4Unspecified(parseIpv4Address('0.0.0.0')));
  t.false(isIpv4Unspecified(parseIpv4Address('0.0.0.1')));
  t.true(isIpv6Multicast(parseIpv6Address('ff02::16')));
  t.false(isIpv6Multicast(parseIpv6Address('fe80::1')));
  t.true(isIpv6Unspecified(parseIpv6Address('::')));
  t.false(isIpv6Unspecified(parseIpv6Address('::1')));
});

test('isUnicastAddress: neither unspecified nor multicast nor the IPv4 limited broadcast, both families', (t) => {
  for (const a of ['192.0.2.1', '10.0.0.255', '2001:db8::1', 'fe80::1']) t.true(isUnicastAddress(parseIpAddress(a).bytes), a);
  for (const a of ['0.0.0.0', '224.0.0.1', '255.255.255.255', '::', 'ff02::1']) t.false(isUnicastAddress(parseIpAddress(a).bytes), a);
});

test('internAddress: one shared copy per address, not a view of the packet; a table of bounded size', (t) => {
  const packet = Buffer.from([10, 0, 0, 1, 10, 0, 0, 1]);
  const a = internAddress(packet.subarray(0, 4));
  const b = internAddress(packet.subarray(4, 8));
  t.is(a, b, 'the same Buffer for the same bytes');
  packet[0] = 99;
  t.deepEqual([...a], [10, 0, 0, 1], 'a copy: the packet buffer is reused');
  t.not(internAddress(Buffer.from('fd000000000000000000000000000001', 'hex')), a);
  // a flood of distinct addresses: past the table's bound each gets its own copy
  for (let i = 0; i < 2000; i++) internAddress(Buffer.from([192, 0, i >> 8, i & 0xff]));
  const late = Buffer.from([198, 51, 100, 7]);
  t.not(internAddress(late), internAddress(late), 'past the bound: not interned');
  t.deepEqual([...internAddress(late)], [198, 51, 100, 7]);
});
