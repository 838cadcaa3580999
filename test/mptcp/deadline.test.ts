// Every deadline of the MPTCP stack either fires work or is cleared (fuzz findings): a client
// stack driven by hand-made server segments into the states where a connection's own deadline
// stayed in the past for good — the engine's timer would then fire every millisecond.
import test from 'ava';
import { keyToIdsn } from '../../src/mptcp/crypto.js';
import { TCP_FLAG_SYN } from '../../src/tcp/segment.js';
import { deadlineViolation } from '../helpers/invariants.js';
import { A0, A1, Bed } from './handbed.js';

// Fuzz finding: after a late fallback (RFC 8684 §3.7, here an MP_FAIL on the only subflow) the
// connection-level retransmission deadline armed before it was never cleared, and the
// connection's pollTimeout() stayed in the past for good.
test('after a late fallback no deadline of the connection stays in the past', (t) => {
  const bed = new Bed([A0]);
  bed.handshake(10);
  t.is(bed.conn.write(Buffer.alloc(1000, 1)), 1000);
  bed.step(11);
  // every byte acknowledged by TCP, none by the DATA_ACK: the connection-level retransmission is armed
  bed.ack(20, 1000, 0);
  t.true(bed.conn.fullyEstablished);
  t.not(bed.conn.pollTimeout(), null, 'the DATA_ACK timer is armed');
  bed.ack(21, 1000, 0, [{ type: 'mp_fail', dsn: keyToIdsn(bed.conn.localKey) + 1n }]);
  t.true(bed.conn.fallback, 'the MP_FAIL made the connection fall back');
  for (let now = 100; now <= 5000; now += 100) {
    bed.timeout(now);
    const v = deadlineViolation(bed.stack, now);
    if (v) return t.fail(v);
  }
  t.is(bed.conn.pollTimeout(), null);
});

// Fuzz finding: a DATA_FIN waiting to be sent again when no subflow is usable (the one that
// carried it went with its path, the other is still in its handshake) kept its deadline in the
// past until a subflow came: the timer fired at every poll.
test('a DATA_FIN pending with no usable subflow: its deadline is cleared, not left in the past', (t) => {
  const bed = new Bed([A0, A1]);
  bed.handshake(10);
  t.is(bed.conn.write(Buffer.alloc(1000, 2)), 1000);
  bed.conn.shutdown();
  bed.step(11);
  // all acknowledged at both levels: the DATA_FIN is due, the path manager opens the join
  const out = bed.ack(20, 1000, 1000);
  t.true(out.some((s) => s.src === '10.2.0.2' && s.tcp.flags === TCP_FLAG_SYN), 'the join SYN went out');
  t.not(bed.conn.pollTimeout(), null, 'the DATA_FIN retransmission is armed');
  // the initial path goes: no usable subflow is left, the join is not answered
  bed.stack.pathDown(30, A0);
  bed.step(30);
  for (let now = 100; now <= 3000; now += 50) {
    bed.timeout(now);
    const v = deadlineViolation(bed.stack, now);
    if (v) return t.fail(v);
  }
  t.pass();
});
