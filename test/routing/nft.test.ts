// The nft script of mptun's table (src/routing/nft.ts), as text: no root needed. What the kernel
// makes of it is checked by setup.test.ts (root, in a namespace) and the e2e tests.
import test from 'ava';
import { masqueradeScript } from '../../src/routing/nft.js';
import { RoutingError } from '../../src/routing/netlink.js';

const natLines = (script: string) => script.split('\n').map((l) => l.trim()).filter((l) => / saddr /.test(l));

test('a path with its interface\'s address is SNATed to it (the mapping outlives a link flap); one without is masqueraded', (t) => {
  const script = masqueradeScript([
    { oifname: 'wlan0', sourcePrefix: '198.18.1.0/24', to: '192.168.1.23' },
    { oifname: 'wwan0', sourcePrefix: '198.18.2.0/24' },
    { oifname: 'wlan0', sourcePrefix: 'fd6d:7074:756e:1::/64', to: '2001:db8::23' },
  ]);
  t.deepEqual(natLines(script), [
    'oifname "wlan0" ip saddr 198.18.1.0/24 snat ip to 192.168.1.23',
    'oifname "wwan0" ip saddr 198.18.2.0/24 masquerade',
    'oifname "wlan0" ip6 saddr fd6d:7074:756e:1::/64 snat ip6 to 2001:db8::23',
  ]);
});

test('a NAT address of the other IP version than the prefix is refused, naming the path', (t) => {
  const e = t.throws(() => masqueradeScript([{ oifname: 'wlan0', sourcePrefix: '198.18.1.0/24', to: '2001:db8::23' }]), { instanceOf: RoutingError });
  t.regex(e!.message, /wlan0: NAT to 2001:db8::23 for 198.18.1.0\/24/);
});
