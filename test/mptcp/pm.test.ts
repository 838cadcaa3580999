// The path manager's signals of one connection (pm.ts) on the wire: ADD_ADDR echoes.
import test from 'ava';
import { addAddrHmac, keyToIdsn } from '../../src/mptcp/crypto.js';
import type { AddAddr, MptcpOption } from '../../src/mptcp/options.js';
import { TCP_FLAG_ACK, TCP_FLAG_SYN } from '../../src/tcp/segment.js';
import { addr, craftSegment, type WireSegment } from './simhost.js';
import { A0, Bed, FLAGS, S, SERVER_ISN, SERVER_KEY } from './handbed.js';

const S6 = addr('fd00:9::1');

/** A client connection established with timestamps (12 bytes of every segment's options). */
function established(): { bed: Bed; send: (now: number, mptcp: MptcpOption[], acked?: number) => WireSegment[] } {
  const bed = new Bed([A0]);
  let tsVal = 1000;
  const from = (now: number, flags: number, mptcp: MptcpOption[], acked = 0) => {
    const ts = bed.syn.tcp.options.timestamps;
    const p = craftSegment(S, A0, {
      srcPort: 443, dstPort: bed.syn.tcp.srcPort, seq: flags & TCP_FLAG_SYN ? SERVER_ISN : SERVER_ISN + 1, ack: (bed.syn.tcp.seq + 1 + acked) >>> 0, flags,
      options: { timestamps: { tsVal: tsVal++, tsEcr: ts?.tsVal ?? 0 } },
    }, mptcp);
    bed.stack.handleInput(now, 0, p);
    return bed.step(now);
  };
  from(10, TCP_FLAG_SYN | TCP_FLAG_ACK, [{ type: 'mp_capable', version: 1, flags: FLAGS, senderKey: SERVER_KEY }]);
  const dataAck = keyToIdsn(bed.conn.localKey) + 1n;
  // the server's first DSS: the connection is fully established
  from(11, TCP_FLAG_ACK, [{ type: 'dss', dataAck, dataAck8: true, dataFin: false }]);
  return { bed, send: (now, mptcp, acked = 0) => from(now, TCP_FLAG_ACK, mptcp, acked) };
}

function announce(bed: Bed, id: number, address: Buffer): AddAddr {
  return { type: 'add_addr', echo: false, addressId: id, address, hmac: addAddrHmac(SERVER_KEY, bed.conn.localKey, id, address) };
}

const echoes = (out: WireSegment[]) => out.flatMap((s) => s.mptcp.filter((o): o is AddAddr => o.type === 'add_addr' && o.echo));

test('an IPv6 ADD_ADDR on an IPv4 connection with timestamps is echoed on the next pure ACK (the echo, 20 bytes, goes before the DSS, as Linux drops the other suboptions for it)', (t) => {
  const { bed, send } = established();
  t.truthy(bed.syn.tcp.options.timestamps, 'the client offers timestamps');
  const out = send(20, [announce(bed, 2, S6)]);
  const e = echoes(out);
  t.is(e.length, 1, `one echo: ${JSON.stringify(out.map((s) => s.mptcp.map((o) => o.type)))}`);
  t.is(e[0]!.addressId, 2);
  t.true(e[0]!.address.equals(S6));
  t.like(bed.conn.counters.snapshot(), { AddAddr: 1, EchoAddTx: 1 });
  // nothing is owed any more: no echo on later ACKs
  t.is(bed.conn.pm.echoesOwed, 0);
});

test('a retransmitted ADD_ADDR whose echo has not gone yet is owed once; one whose echo went is echoed again', (t) => {
  const { bed, send } = established();
  // two announcements before any ACK goes out: one echo each, not two for the same ID
  bed.conn.pm.addAddrReceived(announce(bed, 3, addr('10.9.1.1')), bed.conn.localKey, SERVER_KEY);
  bed.conn.pm.addAddrReceived(announce(bed, 3, addr('10.9.1.1')), bed.conn.localKey, SERVER_KEY);
  t.is(bed.conn.pm.echoesOwed, 1);
  // the echo was lost: the announcer sends it again, and it is echoed again
  const first = send(20, [announce(bed, 4, addr('10.9.2.1'))]);
  t.deepEqual(echoes(first).map((e) => e.addressId).sort(), [3, 4]);
  const again = send(30, [announce(bed, 4, addr('10.9.2.1'))]);
  t.deepEqual(echoes(again).map((e) => e.addressId), [4]);
  t.is(bed.conn.pm.echoesOwed, 0);
});

test('an ADD_ADDR that arrives while data is going out is echoed at once on a pure ACK of its own (as Linux\'s mptcp_pm_send_ack), not left for the next ACK without data', (t) => {
  const { bed, send } = established();
  t.is(bed.conn.write(Buffer.alloc(60000, 7)), 60000);
  const first = bed.step(15).filter((s) => s.tcp.payload.length > 0);
  t.true(first.length > 0, 'the first window went');
  // the server acknowledges the first two segments, with the announcement: more data goes (it
  // would carry the ACK), and the echo must go too
  const acked = first[0]!.tcp.payload.length + first[1]!.tcp.payload.length;
  const out = send(20, [announce(bed, 5, addr('10.9.5.1'))], acked);
  const pure = out.filter((s) => s.tcp.payload.length === 0);
  t.true(out.some((s) => s.tcp.payload.length > 0), 'data went with it');
  t.deepEqual(echoes(pure).map((e) => e.addressId), [5], `the echo on a pure ACK: ${JSON.stringify(out.map((s) => [s.tcp.payload.length, s.mptcp.map((o) => o.type)]))}`);
  t.like(bed.conn.counters.snapshot(), { EchoAddTx: 1 });
});
