// The per-connection scheduler policy (src/mptcp/policy.ts): first matching rule by destination
// port (or range) and prefix; no match: undefined (the connection's default scheduler).
import test from 'ava';
import { compileSchedulerPolicy } from '../../src/mptcp/policy.js';
import { parseIpAddress } from '../../src/ip/address.js';

const dst = (a: string, port: number) => ({ addr: parseIpAddress(a).bytes, port });

test('first match wins: port 22 redundant, 10/8 on 8000-8999 ecf, the rest blest', (t) => {
  const p = compileSchedulerPolicy([
    { port: 22, scheduler: 'redundant' },
    { cidr: '10.0.0.0/8', port: [8000, 8999], scheduler: 'ecf' },
    { scheduler: 'blest' },
  ]);
  t.is(p(dst('192.0.2.1', 22)), 'redundant');
  t.is(p(dst('10.1.2.3', 22)), 'redundant');
  t.is(p(dst('10.1.2.3', 8080)), 'ecf');
  t.is(p(dst('10.1.2.3', 9000)), 'blest');
  t.is(p(dst('192.0.2.1', 8080)), 'blest');
  t.is(p(dst('2001:db8::1', 443)), 'blest');
});

test('no rule matches: the default (undefined); a prefix of one family never matches the other', (t) => {
  const p = compileSchedulerPolicy([{ cidr: '2001:db8::/32', scheduler: 'ecf' }, { cidr: '192.0.2.0/24', port: 443, scheduler: 'kernel' }]);
  t.is(p(dst('2001:db8::5', 80)), 'ecf');
  t.is(p(dst('192.0.2.9', 443)), 'kernel');
  t.is(p(dst('192.0.2.9', 80)), undefined);
  t.is(p(dst('10.0.0.1', 443)), undefined);
  t.is(compileSchedulerPolicy([])(dst('10.0.0.1', 22)), undefined);
});
