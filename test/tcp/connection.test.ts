// The TCP connection against the rules of RFC 9293 §3.10 (event processing), RFC 5961 (blind
// in-window attacks), RFC 7323 (window scale, timestamps, PAWS), RFC 2018/2883 (SACK, D-SACK),
// RFC 6298 (RTO), RFC 5681/6582/6675 (loss recovery) and RFC 8985 §7 (tail loss probe).
//
// One test per rule; each quotes the rule it checks. The connection under test is driven in
// virtual time by the fixtures of ./factories.ts: a scripted peer builds segments from a
// template with overrides, and factories put the connection in each state. Assertions are on
// what goes on the wire (control bits, SEQ, ACK, window, options), on events and on counters.
import test from 'ava';
import {
  type Sent, LOCAL_ISS, PEER_ISS, PEER_TS_BASE, RTT,
  acceptedSocket, bytes, connectionIn, ctl, established, establishedPair, Fixture, Pair, synReceived, synSent,
  type StateName,
} from './factories.js';
import { TcpState } from '../../src/tcp/connection.js';
import { TCP_FLAG_ACK, TCP_FLAG_PSH, TCP_FLAG_RST, TCP_FLAG_SYN, TCP_FLAG_URG } from '../../src/tcp/segment.js';
import { seqAdd } from '../../src/tcp/seq.js';

/** The data segments among `segs`. */
const dataOf = (segs: Sent[]): Sent[] => segs.filter((s) => s.payload.length > 0);
/** The payload bytes among `segs`. */
const payloadBytes = (segs: Sent[]): number => segs.reduce((n, s) => n + s.payload.length, 0);
/** The event types, in order. */
const types = (events: Array<{ type: string }>): string[] => events.map((e) => e.type);

/** Our send MSS after the factories' handshake: 1460 less the 12 bytes of the Timestamps option. */
const MSS = 1448;

// ============================================================================ opening

test('active open sends <SEQ=ISS><CTL=SYN> with MSS, Window Scale, SACK-permitted and Timestamps (RFC 9293 §3.10.1; RFC 7323 §2.2, §3.2; RFC 2018 §2)', (t) => {
  const f = synSent({ recvBufferMax: 1 << 20 });
  t.is(ctl(f.syn), 'SYN');
  t.is(f.syn.seq, LOCAL_ISS);
  t.is(f.syn.payload.length, 0);
  t.is(f.syn.options.mss, 1460);
  // RFC 7323 §2.2: the shift that lets the largest receive buffer (1 MiB) fit 16 bits: 2**20 >> 5 = 32768
  t.is(f.syn.options.windowScale, 5);
  t.true(f.syn.options.sackPermitted);
  // RFC 7323 §3.2: "The TSecr field ... is only valid if the ACK bit is set"; a SYN sends 0
  t.truthy(f.syn.options.timestamps);
  t.is(f.syn.options.timestamps!.tsEcr, 0);
  // RFC 7323 §2.2: "The window field in a segment where the SYN bit is set ... MUST NOT be scaled"
  t.is(f.syn.window, 65535);
  t.is(f.state, TcpState.SynSent);
  t.is(f.flush().length, 0, 'one SYN, not two');
});

test('SYN-SENT + SYN,ACK: ESTABLISHED and <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 9293 §3.10.7.3 fourth)', (t) => {
  const f = synSent();
  f.advance(RTT);
  const synAck = f.peer.synAck();
  const out = f.input(synAck);
  t.is(f.state, TcpState.Established);
  t.is(out.length, 1);
  t.is(ctl(out[0]!), 'ACK');
  t.is(out[0]!.seq, seqAdd(LOCAL_ISS, 1));
  t.is(out[0]!.ack, seqAdd(PEER_ISS, 1));
  t.is(out[0]!.options.timestamps!.tsEcr, synAck.options.timestamps!.tsVal, 'RFC 7323 §3.2: TSecr echoes the SYN,ACK\'s TSval');
  t.deepEqual(types(f.events()), ['connected', 'writable']);
});

for (const [what, ackOffset] of [['SEG.ACK =< ISS', 0], ['SEG.ACK > SND.NXT', 2]] as const) {
  test(`SYN-SENT + an ACK with ${what}: <SEQ=SEG.ACK><CTL=RST>, segment discarded (RFC 9293 §3.10.7.3 first)`, (t) => {
    const f = synSent();
    const badAck = seqAdd(LOCAL_ISS, ackOffset);
    const out = f.input(f.peer.synAck({ ack: badAck }));
    t.is(out.length, 1);
    t.is(ctl(out[0]!), 'RST');
    t.is(out[0]!.seq, badAck);
    t.is(f.state, TcpState.SynSent, 'the SYN,ACK was discarded');
    t.deepEqual(f.events(), []);
  });
}

test('SYN-SENT + RST with an unacceptable ACK: dropped, no RST in reply (RFC 9293 §3.10.7.3: "unless the RST bit is set, if so drop the segment")', (t) => {
  const f = synSent();
  const out = f.input(f.peer.seg({ seq: 0, ack: LOCAL_ISS, flags: TCP_FLAG_RST | TCP_FLAG_ACK }));
  t.deepEqual(out, []);
  t.is(f.state, TcpState.SynSent);
});

test('SYN-SENT + RST with an acceptable ACK: "error: connection reset", CLOSED (RFC 9293 §3.10.7.3 second)', (t) => {
  const f = synSent();
  const out = f.input(f.peer.seg({ seq: 0, ack: seqAdd(LOCAL_ISS, 1), flags: TCP_FLAG_RST | TCP_FLAG_ACK }));
  t.deepEqual(out, []);
  t.is(f.state, TcpState.Closed);
  t.deepEqual(f.events(), [{ type: 'reset', reason: 'refused' }, { type: 'closed' }]);
  t.is(f.conn.pollTimeout(), null, 'no SYN retransmission after the refusal');
});

test('SYN-SENT + RST without ACK: "Otherwise (no ACK), drop the segment and return" (RFC 9293 §3.10.7.3 second)', (t) => {
  const f = synSent();
  const out = f.input(f.peer.seg({ seq: PEER_ISS, ack: 0, flags: TCP_FLAG_RST }));
  t.deepEqual(out, []);
  t.is(f.state, TcpState.SynSent);
  t.deepEqual(f.events(), []);
});

test('SYN-SENT + an acceptable ACK without SYN: "if neither of the SYN or RST bits is set, then drop the segment" (RFC 9293 §3.10.7.3 fifth)', (t) => {
  const f = synSent();
  const out = f.input(f.peer.seg({ seq: PEER_ISS, ack: seqAdd(LOCAL_ISS, 1) }));
  t.deepEqual(out, []);
  t.is(f.state, TcpState.SynSent);
});

test('simultaneous open: SYN-SENT + SYN → SYN-RECEIVED and <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, then ESTABLISHED on both ends (RFC 9293 §3.10.7.3, §3.5 figure 7)', (t) => {
  const p = new Pair();
  p.a.connect(0);
  p.b.connect(0);
  const synA = p.take('a');
  const synB = p.take('b');
  t.deepEqual(synA.map(ctl), ['SYN']);
  t.deepEqual(synB.map(ctl), ['SYN']);
  // the SYNs cross
  p.give('a', synA);
  p.give('b', synB);
  t.is(p.a.state, TcpState.SynReceived);
  t.is(p.b.state, TcpState.SynReceived);
  const synAckA = p.take('a');
  const synAckB = p.take('b');
  t.deepEqual(synAckA.map(ctl), ['SYN,ACK']);
  t.is(synAckA[0]!.seq, LOCAL_ISS);
  t.is(synAckA[0]!.ack, seqAdd(PEER_ISS, 1));
  t.deepEqual(synAckB.map(ctl), ['SYN,ACK']);
  t.is(synAckB[0]!.seq, PEER_ISS);
  t.is(synAckB[0]!.ack, seqAdd(LOCAL_ISS, 1));
  p.give('a', synAckA);
  p.give('b', synAckB);
  p.settle();
  t.is(p.a.state, TcpState.Established);
  t.is(p.b.state, TcpState.Established);
  t.true(types(p.events('a')).includes('connected'));
  t.true(types(p.events('b')).includes('connected'));
  // and the connection carries data both ways
  p.a.write(Buffer.from('ping'));
  p.b.write(Buffer.from('pong'));
  p.run(100);
  t.is(p.b.read()?.toString(), 'ping');
  t.is(p.a.read()?.toString(), 'pong');
});

test('passive open: acceptSyn answers <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> with the options the peer offered (RFC 9293 §3.10.7.2 third)', (t) => {
  const f = synReceived();
  t.is(ctl(f.synAck), 'SYN,ACK');
  t.is(f.synAck.seq, LOCAL_ISS);
  t.is(f.synAck.ack, seqAdd(PEER_ISS, 1));
  t.is(f.synAck.options.mss, 1460);
  t.not(f.synAck.options.windowScale, undefined);
  t.true(f.synAck.options.sackPermitted);
  t.is(f.synAck.options.timestamps!.tsEcr, PEER_TS_BASE, 'TSecr echoes the SYN\'s TSval');
  t.is(f.state, TcpState.SynReceived);
});

test('SYN-RECEIVED + an acceptable ACK: ESTABLISHED, "connected" (RFC 9293 §3.10.7.4 fifth: "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state")', (t) => {
  const f = synReceived();
  f.advance(RTT);
  const out = f.input(f.peer.seg());
  t.deepEqual(out, []);
  t.is(f.state, TcpState.Established);
  t.deepEqual(types(f.events()), ['connected', 'writable']);
});

test('SYN-RECEIVED + an ACK of nothing we sent: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.4 fifth: "If the segment acknowledgment is not acceptable, form a reset segment")', (t) => {
  const f = synReceived();
  const out = f.input(f.peer.seg({ ack: LOCAL_ISS }));
  t.deepEqual(out.map(ctl), ['RST']);
  t.is(out[0]!.seq, LOCAL_ISS);
  t.is(f.state, TcpState.SynReceived);
});

// Regression (found by this test, fixed): the branch of handleSynchronized that re-sends the SYN,ACK for a retransmitted SYN
// (`seg.seq === this.irs`) is never reached: a SYN at IRS occupies [IRS, IRS+1), which is wholly
// below RCV.NXT = IRS+1, so the sequence check ("first") rejects it and a bare ACK goes out.
// A peer in SYN-SENT drops a bare ACK (RFC 9293 §3.10.7.3 fifth), so the lost SYN,ACK is only
// repaired by our own RTO. Linux re-sends the SYN,ACK here (tcp_check_req, "Enforce SYN-ACK
// according to figure 8, figure 6 of RFC793, fixed by RFC1122").
test('SYN-RECEIVED + a retransmitted SYN: the SYN,ACK again, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>', (t) => {
  const f = synReceived();
  f.advance(300);
  const out = f.input(f.peer.syn());
  t.deepEqual(out.map(ctl), ['SYN,ACK']);
  t.is(out[0]?.seq, LOCAL_ISS);
  t.is(out[0]?.ack, seqAdd(PEER_ISS, 1));
  t.is(f.state, TcpState.SynReceived);
});

test('SYN retransmitted on RTO with the timer doubled each time, given up after maxSynRetransmits (RFC 6298 §5.5; RFC 9293 §3.8.3 R2)', (t) => {
  const f = synSent({ maxSynRetransmits: 3 });
  const out = f.advance(60_000);
  const syns = out.filter((s) => ctl(s) === 'SYN');
  // RFC 6298 §2.1: "the sender SHOULD set RTO <- 1 second", then §5.5 "RTO <- RTO * 2"
  t.deepEqual(syns.map((s) => s.at), [1000, 3000, 7000]);
  for (const s of syns) {
    t.is(s.seq, LOCAL_ISS);
    t.is(s.options.mss, 1460);
  }
  t.is(f.conn.counters.get('synRetransmits'), 3);
  t.is(f.state, TcpState.Closed);
  t.deepEqual(f.events(), [{ type: 'reset', reason: 'timeout' }, { type: 'closed' }]);
  t.is(out.filter((s) => s.flags & TCP_FLAG_RST).length, 0, 'nothing to reset: the peer never answered');
});

test('SYN,ACK retransmitted on RTO in SYN-RECEIVED (RFC 9293 §3.10.8: "send the segment at the front of the retransmission queue again")', (t) => {
  const f = synReceived();
  const out = f.advance(1000);
  t.deepEqual(out.map(ctl), ['SYN,ACK']);
  t.is(out[0]!.seq, LOCAL_ISS);
  t.is(out[0]!.at, 1000);
});

// Regression (found by this test, fixed): after a SYN timed out, the backed-off RTO (1 s doubled = 2 s) is kept for the data.
// RFC 6298 §5.7: "If the timer expires awaiting the ACK of a SYN segment and the TCP
// implementation is using an RTO less than 3 seconds, the RTO MUST be re-initialized to 3
// seconds when data transmission begins (i.e., after the three-way handshake completes)."
// (Without timestamps the handshake gives no RTT sample: Karn's rule excludes the retransmitted SYN.)
test('after a SYN timeout and no RTT sample, the data RTO is 3 s (RFC 6298 §5.7)', (t) => {
  const f = synSent({ timestamps: false, sack: false }, { timestamps: false });
  f.advance(1500); // the first SYN was lost; the retransmission at 1 s is answered
  f.input(f.peer.synAck());
  t.is(f.state, TcpState.Established);
  const sent = f.write(bytes(100));
  t.is(dataOf(sent).length, 1);
  const rtx = dataOf(f.advance(10_000));
  t.true(rtx.length > 0);
  t.is(rtx[0]!.at, 1500 + 3000);
});

test('no Window Scale option from the peer: no scaling either way (RFC 7323 §2.2: "If a Window Scale option is received ... both send and receive window scaling")', (t) => {
  const f = established({}, { windowScale: null, window: 1000 });
  const ack = f.wire.at(-1)!;
  t.is(ack.window, 65535, 'our 256 KiB receive window, unscaled, capped at 65535');
  // and the peer's window field means bytes
  const out = f.write(bytes(3000));
  t.is(payloadBytes(out), 1000);
});

test('the peer\'s window is scaled by its shift after the SYN, never in the SYN (RFC 7323 §2.2: "The Window field in a SYN ... segment itself is never scaled")', (t) => {
  const f = established({}, { windowScale: 2, window: 1000 });
  t.is(payloadBytes(f.write(bytes(5000))), 1000, 'the SYN,ACK\'s window: 1000 bytes');
  f.advance(RTT);
  // window field 1000 << 2 = 4000 bytes from SND.UNA
  const out = f.input(f.peer.seg({ window: 1000 }));
  t.is(payloadBytes(out), 4000, 'the other 4000 bytes: the window now reaches SND.UNA + 4000');
});

test('our window is scaled by our shift once the peer sent Window Scale (RFC 7323 §2.3)', (t) => {
  const f = established({ recvBufferSize: 200_000, recvBufferMax: 1 << 20 }, { windowScale: 0 });
  const ack = f.wire.at(-1)!;
  // shift 5: 200000 >> 5
  t.is(ack.window, 200_000 >>> 5);
});

test('no SACK-permitted from the peer: no SACK blocks (RFC 2018 §2: "MUST NOT be sent if the SACK-permitted option was not received")', (t) => {
  const f = established({}, { sackPermitted: false });
  const out = f.input(f.peer.data(bytes(100), { seq: f.peerSeq(500) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.options.sackBlocks, undefined);
});

test('Timestamps only when both sides sent the option (RFC 7323 §3.2: "MUST NOT be sent in a <SYN,ACK> ... unless ... received")', (t) => {
  const noPeerTs = established({}, { timestamps: false });
  t.is(noPeerTs.wire.at(-1)!.options.timestamps, undefined);
  t.is(noPeerTs.write(bytes(10))[0]!.options.timestamps, undefined);

  const passive = synReceived({}, { timestamps: false });
  t.is(passive.synAck.options.timestamps, undefined);

  const noOwnTs = synSent({ timestamps: false });
  t.is(noOwnTs.syn.options.timestamps, undefined);
});

test('the send MSS is the peer\'s MSS less the options every segment carries (RFC 9293 §3.7.1); 536 without the option', (t) => {
  const f = established({}, { mss: 1000 });
  const out = dataOf(f.write(bytes(5000)));
  // 1000 - 12 = 988 bytes a segment: 5 × 988 + 60
  t.deepEqual(out.map((s) => s.payload.length), [988, 988, 988, 988, 988, 60]);

  const g = established({}, { mss: null, timestamps: false });
  const out2 = dataOf(g.write(bytes(600)));
  t.deepEqual(out2.map((s) => s.payload.length), [536, 64]);
});

// ============================================================================ data

test('in-order data is delivered, "readable", and acknowledged <ACK=RCV.NXT> (RFC 9293 §3.10.7.4 seventh)', (t) => {
  const f = established();
  const data = bytes(1000, 7);
  f.input(f.peer.data(data));
  t.deepEqual(types(f.events()), ['readable']);
  t.deepEqual(f.readAll(), data);
  const acks = f.advance(1000);
  t.deepEqual(acks.map(ctl), ['ACK']);
  t.is(acks[0]!.ack, f.peerSeq(1000));
  t.is(acks[0]!.seq, seqAdd(LOCAL_ISS, 1));
});

test('delayed ACK: one segment is acknowledged only after delayedAckMs (RFC 9293 §3.8.6.3: "the delay MUST be less than 0.5 seconds")', (t) => {
  const f = established({ delayedAckMs: 40 });
  t.deepEqual(f.input(f.peer.data(bytes(MSS))), []);
  t.deepEqual(f.advance(39), []);
  const out = f.advance(1);
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(MSS));
  t.is(f.conn.counters.get('delayedAcks'), 1);
});

test('delayed ACK: the second full-sized segment is acknowledged at once (RFC 9293 §3.8.6.3: "an ACK SHOULD be generated for at least every second full-sized segment")', (t) => {
  const f = established();
  t.deepEqual(f.input(f.peer.data(bytes(MSS))), []);
  const out = f.input(f.peer.data(bytes(MSS)));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(2 * MSS));
  t.is(f.conn.counters.get('delayedAcks'), 0);
});

test('ACKs at once are counted apart from the delayed ones: every second segment, out of order, a gap filled', (t) => {
  const f = established();
  f.input(f.peer.data(bytes(MSS)));
  t.is(f.conn.counters.get('immediateAcks'), 0, 'one segment: the delayed-ACK timer');
  f.input(f.peer.data(bytes(MSS)));
  t.is(f.conn.counters.get('immediateAcks'), 1, 'the second full-sized one');
  const gap = f.peer.data(bytes(100));
  f.input(f.peer.data(bytes(100)));
  t.is(f.conn.counters.get('immediateAcks'), 2, 'out of order');
  f.input(gap);
  t.is(f.conn.counters.get('immediateAcks'), 3, 'the gap filled');
  t.is(f.conn.counters.get('delayedAcks'), 0);
});

test('urgent data (RFC 9293 §3.8.5): delivered inline, in order, as any other; the URG bit counted', (t) => {
  const f = established();
  const data = Buffer.from('urgent, or so it says');
  f.input(f.peer.data(data, { flags: TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_URG, urgent: 5 }));
  t.deepEqual(f.readAll(), data);
  t.is(f.conn.counters.get('urgentIgnored'), 1);
});

test('out-of-order data: an immediate ACK whose first SACK block holds the segment just received, then the most recent ones (RFC 5681 §4.2; RFC 2018 §4)', (t) => {
  const f = established();
  const block = (from: number, to: number) => ({ start: f.peerSeq(from), end: f.peerSeq(to) });
  const send = (from: number) => f.input(f.peer.data(bytes(100), { seq: f.peerSeq(from) }));

  let out = send(100);
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(0));
  t.deepEqual(out[0]!.options.sackBlocks, [block(100, 200)]);

  out = send(300);
  t.deepEqual(out[0]!.options.sackBlocks, [block(300, 400), block(100, 200)]);

  out = send(500);
  t.deepEqual(out[0]!.options.sackBlocks, [block(500, 600), block(300, 400), block(100, 200)]);

  // with Timestamps there is room for 3 blocks (RFC 2018 §3); the oldest is left out
  out = send(700);
  t.deepEqual(out[0]!.options.sackBlocks, [block(700, 800), block(500, 600), block(300, 400)]);

  // "The first SACK block ... MUST specify the contiguous block of data containing the segment which triggered this ACK"
  out = send(200);
  t.deepEqual(out[0]!.options.sackBlocks, [block(100, 400), block(700, 800), block(500, 600)]);

  // the hole at the left edge filled: the ACK moves (at once: RFC 5681 §4.2 "fills in all or part of a gap")
  out = send(0);
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(400));
  t.is(f.conn.counters.get('outOfOrderSegments'), 5);
});

test('a duplicate segment is acknowledged at once (RFC 9293 §3.10.7.4 first: "an acknowledgment should be sent in reply")', (t) => {
  const f = established();
  f.input(f.peer.data(bytes(100)));
  f.advance(100);
  const out = f.input(f.peer.data(bytes(100), { seq: f.peerSeq(0) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(100));
  t.is(f.conn.counters.get('duplicateSegments'), 1);
  t.is(f.conn.readable, 100, 'delivered once');
});

// Regression (found by this test, fixed): handleSynchronized records the duplicate in `this.dsack`, but segment() sets
// `this.dsack = null` (with the other ACK bookkeeping) before it calls baseOptions(), which is
// where the D-SACK block would be put first: no D-SACK ever reaches the wire.
test('a duplicate segment is reported in a D-SACK block, first (RFC 2883 §4: "the first block of the SACK option should be a D-SACK block")', (t) => {
  const f = established();
  f.input(f.peer.data(bytes(100)));
  f.advance(100);
  const out = f.input(f.peer.data(bytes(100), { seq: f.peerSeq(0) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(100));
  t.deepEqual(out[0]!.options.sackBlocks, [{ start: f.peerSeq(0), end: f.peerSeq(100) }]);
  t.is(f.conn.counters.get('duplicateSegments'), 1);
  // and the D-SACK is said once
  f.input(f.peer.data(bytes(100)));
  const next = f.advance(100);
  t.is(next.at(-1)!.options.sackBlocks, undefined);
});

test('a D-SACK received is counted, not taken for new SACK information (RFC 2883 §4)', (t) => {
  const f = established();
  f.write(bytes(1000));
  f.advance(RTT);
  f.input(f.peer.seg({ sack: [{ start: f.ourSeq(0), end: f.ourSeq(1000) }] }));
  t.is(f.conn.counters.get('dsack'), 1);
  t.is(f.conn.counters.get('dupAcks'), 0);
});

test('window update: SND.WND is not taken from a segment older than SND.WL1 (RFC 9293 §3.10.7.4: "If (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK))")', (t) => {
  const f = established();
  // the peer's later segment (window 5000) overtakes an earlier one (window 60000)
  f.input(f.peer.data(bytes(100), { seq: f.peerSeq(100), window: 5000 }));
  f.input(f.peer.data(bytes(100), { seq: f.peerSeq(0), window: 60000 }));
  t.is(f.conn.info().sndWnd, 5000);
  // three full segments fit in 5000 bytes (the 656 left would be a small segment)
  t.is(payloadBytes(f.write(bytes(20_000))), 3 * MSS);
});

test('window update: same SEG.SEQ and SND.WL2 =< SEG.ACK updates SND.WND (a pure window update opens the window)', (t) => {
  const f = established({}, { window: 2000 });
  t.is(payloadBytes(f.write(bytes(10_000))), MSS, 'one full segment; the 552 bytes left would be a small segment');
  f.advance(RTT);
  // the peer acknowledges nothing new but opens its window: same SEQ, same ACK
  const out = f.input(f.peer.seg({ ack: f.ourSeq(0), window: 8000 }));
  // 8000 - 1448 in flight = 6552 of room: four full segments (the 760 left would be a small one)
  t.is(payloadBytes(out), 4 * MSS);
  t.is(f.conn.info().sndWnd, 8000);
});

// Regression (found by this test, fixed): processAck updates the window from any ACK in [SND.UNA - MAX.SND.WND, SND.UNA) that passes
// the WL1/WL2 test. RFC 9293 §3.10.7.4: "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should
// be updated." A window that the peer offered relative to an older ACK is then taken relative to
// SND.UNA, i.e. the right edge is moved beyond what the peer offered.
test('window update: an ACK below SND.UNA does not update SND.WND (RFC 9293 §3.10.7.4: "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated")', (t) => {
  const f = established();
  f.write(bytes(1000));
  f.advance(RTT);
  f.input(f.peer.data(bytes(10), { window: 30000 })); // acknowledges the 1000 bytes, window 30000
  t.is(f.conn.info().sndWnd, 30000);
  // a newer segment of the peer (SEG.SEQ > SND.WL1) that carries an ACK older than SND.UNA
  // (within MAX.SND.WND, so RFC 5961 §5.2 lets it through)
  f.input(f.peer.data(bytes(10), { ack: f.ourSeq(0), window: 2000 }));
  t.is(f.conn.info().sndWnd, 30000);
});

test('the receive window never shrinks: out-of-order data held does not move the right edge left (RFC 9293 §3.10.7.4: "The total of RCV.NXT and RCV.WND should not be reduced")', (t) => {
  const f = established({ recvBufferSize: 10_000, recvBufferMax: 10_000 });
  const edge = (s: Sent) => seqAdd(s.ack, s.window);
  const first = f.wire.at(-1)!;
  t.is(first.window, 10_000);
  const out = f.input(f.peer.data(bytes(1000), { seq: f.peerSeq(1000) }));
  t.is(out[0]!.window, 10_000, '1000 bytes held out of order, 9000 free, yet 10000 offered');
  t.is(edge(out[0]!), edge(first));
  const filled = f.input(f.peer.data(bytes(1000), { seq: f.peerSeq(0) }));
  t.is(filled[0]!.ack, f.peerSeq(2000));
  t.is(filled[0]!.window, 8000);
  t.is(edge(filled[0]!), edge(first));
});

test('a zero window: probes after one RTO, the interval doubling, until the window opens (RFC 9293 §3.8.6.1)', (t) => {
  const f = established();
  f.write(bytes(1000));
  f.advance(RTT);
  f.input(f.peer.seg({ window: 0 })); // all acknowledged, window closed
  const t0 = f.now;
  t.deepEqual(f.write(bytes(500, 99)), [], 'nothing may be sent into a zero window');
  const probes = f.advance(1500);
  // "The transmitting host SHOULD send the first zero-window probe when a zero window has existed
  // for the retransmission timeout period ... and SHOULD increase exponentially the interval"
  t.deepEqual(probes.map((s) => s.at - t0), [200, 600, 1400]);
  for (const p of probes) {
    t.is(p.seq, f.ourSeq(1000), 'a probe carries the next byte, at SND.NXT');
    t.is(p.payload.length, 1);
    t.is(p.payload[0], 99);
  }
  t.is(f.conn.counters.get('zeroWindowProbes'), 3);
  // the window opens (the peer had no room for the probes' byte: it acknowledges up to it)
  const out = f.input(f.peer.seg({ ack: f.ourSeq(1000), window: 65535 }));
  t.is(payloadBytes(out), 500);
  t.is(dataOf(out)[0]!.seq, f.ourSeq(1000));
  t.deepEqual(f.advance(10_000).filter((s) => s.payload.length === 1), [], 'no more probes');
});

// Regression (found by this test, fixed): the probe byte goes out at SND.NXT but neither SND.NXT nor SND.MAX moves past it
// (pollData step 5 builds it with segment(), not buildData()). A receiver whose window opened in
// the meantime takes the byte (RFC 9293 §3.8.6.1: probing is "at least one octet of new data")
// and acknowledges SND.NXT+1; handleSynchronized then finds SEG.ACK > SND.MAX ('ackTooNew'),
// answers with a challenge ACK and drops the segment, window update included. Every later probe
// gets the same answer: the connection is stuck for good (probes every 60 s, nothing else).
// RFC 9293 §3.10.7.4 fifth: only "If the ACK acks something not yet sent (SEG.ACK > SND.NXT)"
// is the segment dropped; the probe octet was sent.
test('a zero-window probe octet that the peer accepts: its ACK is taken and the data resumes (RFC 9293 §3.8.6.1, §3.10.7.4 fifth)', (t) => {
  const f = established();
  f.write(bytes(1000));
  f.advance(RTT);
  f.input(f.peer.seg({ window: 0 }));
  f.write(bytes(500, 99));
  const probe = f.advance(200);
  t.deepEqual(probe.map((s) => s.payload.length), [1]);
  // the receiver's application read meanwhile: the probe's octet is taken and acknowledged
  const out = f.input(f.peer.seg({ ack: f.ourSeq(1001), window: 65535 }));
  t.is(f.conn.counters.get('ackTooNew'), 0);
  t.is(dataOf(out)[0]?.seq, f.ourSeq(1001));
  t.is(payloadBytes(out), 499);
});

test('sender SWS avoidance: no small segment while data is in flight (RFC 9293 §3.8.6.2.1)', (t) => {
  const f = established({}, { window: 2000 });
  const out = dataOf(f.write(bytes(10_000)));
  t.deepEqual(out.map((s) => s.payload.length), [MSS], 'the 552 bytes of window left are not used for a small segment');
  f.advance(RTT);
  const next = dataOf(f.input(f.peer.seg({ window: 2000 })));
  t.deepEqual(next.map((s) => s.payload.length), [MSS]);
});

test('a small segment goes when it is all there is to send (RFC 9293 §3.7.4 with noDelay; §3.8.6.2.1 "data is pushed and all queued data can be sent now")', (t) => {
  const f = established();
  t.deepEqual(dataOf(f.write(bytes(10))).map((s) => s.payload.length), [10]);
  t.deepEqual(dataOf(f.write(bytes(10))).map((s) => s.payload.length), [10]);
});

// ============================================================================ unacceptable segments

/** A connection whose receive buffer (3000 bytes) is full: RCV.WND = 0. */
function zeroWindow(): Fixture {
  const f = established({ recvBufferSize: 3000, recvBufferMax: 3000 });
  f.input(f.peer.data(bytes(1000)));
  f.input(f.peer.data(bytes(1000)));
  f.input(f.peer.data(bytes(1000)));
  const acks = f.advance(100);
  if (acks.at(-1)?.window !== 0) throw new Error('the window did not close');
  return f;
}

test('acceptability, SEG.LEN = 0 and RCV.WND = 0: acceptable iff SEG.SEQ = RCV.NXT (RFC 9293 §3.10.7.4, table 6)', (t) => {
  const f = zeroWindow();
  t.deepEqual(f.input(f.peer.seg()), [], 'SEG.SEQ = RCV.NXT: acceptable, nothing to answer');
  const out = f.input(f.peer.seg({ seq: seqAdd(f.peer.seq, 1) }));
  t.deepEqual(out.map(ctl), ['ACK'], 'SEG.SEQ = RCV.NXT+1: not acceptable, an ACK in reply');
  t.is(f.conn.counters.get('outOfWindow'), 1);
});

test('acceptability, SEG.LEN > 0 and RCV.WND = 0: "not acceptable" (RFC 9293 §3.10.7.4, table 6)', (t) => {
  const f = zeroWindow();
  const out = f.input(f.peer.data(bytes(10)));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(3000));
  t.is(out[0]!.window, 0);
  t.is(f.conn.readable, 3000, 'the data was dropped');
});

test('acceptability, SEG.LEN = 0 and RCV.WND > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND (RFC 9293 §3.10.7.4, table 6)', (t) => {
  const f = established({ recvBufferSize: 10_000, recvBufferMax: 10_000 });
  const rcvNxt = f.peer.seq;
  t.deepEqual(f.input(f.peer.seg({ seq: rcvNxt })), []);
  t.deepEqual(f.input(f.peer.seg({ seq: seqAdd(rcvNxt, 9_999) })), []);
  t.deepEqual(f.input(f.peer.seg({ seq: seqAdd(rcvNxt, 10_000) })).map(ctl), ['ACK'], 'at RCV.NXT+RCV.WND: not acceptable');
  t.deepEqual(f.input(f.peer.seg({ seq: seqAdd(rcvNxt, -1) })).map(ctl), ['ACK'], 'below RCV.NXT: not acceptable');
});

test('acceptability, SEG.LEN > 0 and RCV.WND > 0: the first or the last octet in the window (RFC 9293 §3.10.7.4, table 6)', (t) => {
  const f = established({ recvBufferSize: 10_000, recvBufferMax: 10_000 });
  f.input(f.peer.data(bytes(100)));
  // straddles the left edge: SEG.SEQ+SEG.LEN-1 is in the window; "only the new parts are processed"
  f.input(f.peer.data(bytes(100, 50), { seq: f.peerSeq(50) }));
  t.is(f.conn.readable, 150);
  t.deepEqual(f.readAll(), bytes(150));
  // straddles the right edge: SEG.SEQ is in the window (held out of order, trimmed to the window)
  const right = f.input(f.peer.data(bytes(200), { seq: f.peerSeq(150 + 9_900) }));
  t.deepEqual(right.map(ctl), ['ACK']);
  t.truthy(right[0]!.options.sackBlocks, 'held, and SACKed');
  // wholly beyond the window
  const beyond = f.input(f.peer.data(bytes(100), { seq: f.peerSeq(150 + 10_000) }));
  t.deepEqual(beyond.map(ctl), ['ACK']);
  t.is(f.conn.counters.get('outOfWindow'), 1);
});

// Regression (a SHOULD; found by this test, fixed): with RCV.WND = 0 a segment with data is dropped whole, its ACK and window
// unread. RFC 9293 §3.10.7.4 first: "If the RCV.WND is zero, no segments will be acceptable, but
// special allowance should be made to accept valid ACKs, URGs, and RSTs." A peer that probes our
// zero window with one octet (the BSD way) acknowledges our data in vain. Linux accepts a segment
// at RCV.NXT into a zero window for its ACK (tcp_sequence), then drops the data.
test('RCV.WND = 0: the ACK of a data segment that does not fit is still processed (RFC 9293 §3.10.7.4: "special allowance should be made to accept valid ACKs")', (t) => {
  const f = established({ recvBufferSize: 3000, recvBufferMax: 3000 });
  f.write(bytes(500));
  for (let i = 0; i < 3; i++) f.input(f.peer.data(bytes(1000), { ack: f.ourSeq(0) }));
  f.advance(100);
  // the peer probes our zero window with one octet, and acknowledges our 500 bytes
  f.input(f.peer.data(bytes(1), { ack: f.ourSeq(500) }));
  t.is(f.conn.readable, 3000, 'the octet is not taken');
  t.is(f.conn.unacknowledged, 0, 'the ACK is');
});

test('the window opened by the application reading is announced at once (RFC 9293 §3.8.6.2.2 receiver SWS avoidance)', (t) => {
  const f = zeroWindow();
  t.deepEqual(f.readAll(), Buffer.concat([bytes(1000), bytes(1000), bytes(1000)]));
  const out = f.flush();
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.window, 3000);
  t.is(out[0]!.ack, f.peerSeq(3000));
});

test('an unacceptable segment is answered <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and dropped (RFC 9293 §3.10.7.4 first)', (t) => {
  const f = established();
  f.write(bytes(300));
  const out = f.input(f.peer.data(bytes(100), { seq: seqAdd(f.peer.seq, 10_000_000) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.seq, f.ourSeq(300));
  t.is(out[0]!.ack, f.peer.seq);
  t.is(f.conn.readable, 0);
});

test('PAWS: a segment whose TSval is older than TS.Recent is dropped and answered with an ACK (RFC 7323 §5.3 R1)', (t) => {
  const f = established();
  f.advance(10);
  const stale = PEER_TS_BASE + RTT - 1; // TS.Recent is the SYN,ACK's TSval, PEER_TS_BASE + RTT
  const out = f.input(f.peer.data(bytes(100), { tsVal: stale }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(0));
  t.is(f.conn.readable, 0);
  t.is(f.conn.counters.get('pawsRejected'), 1);
});

test('PAWS does not apply to a RST (RFC 7323 §5.3 R1: "and if the RST bit is not set")', (t) => {
  const f = established();
  f.advance(10);
  const out = f.input(f.peer.rst({ options: { timestamps: { tsVal: PEER_TS_BASE, tsEcr: 0 } } }));
  t.deepEqual(out, []);
  t.is(f.state, TcpState.Closed);
});

test('RST with SEG.SEQ = RCV.NXT resets the connection (RFC 5961 §3.2; RFC 9293 §3.10.7.4 second)', (t) => {
  const f = established();
  const out = f.input(f.peer.rst());
  t.deepEqual(out, [], 'no RST in reply to a RST');
  t.is(f.state, TcpState.Closed);
  t.deepEqual(f.events(), [{ type: 'reset', reason: 'peerReset' }, { type: 'closed' }]);
  t.is(f.conn.counters.get('resetsReceived'), 1);
});

test('RST in the window but not at RCV.NXT: a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, the RST dropped (RFC 5961 §3.2)', (t) => {
  const f = established();
  const out = f.input(f.peer.rst({ seq: seqAdd(f.peer.seq, 100) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.seq, f.ourSeq(0));
  t.is(out[0]!.ack, f.peer.seq);
  t.is(f.state, TcpState.Established);
  t.deepEqual(f.events(), []);
  t.is(f.conn.counters.get('challengeAckRst'), 1);
  t.is(f.conn.counters.get('challengeAcks'), 1);
});

test('RST outside the window: silently dropped (RFC 5961 §3.2: "If the RST bit is set and the sequence number is outside the current receive window, silently drop the segment")', (t) => {
  const f = established();
  t.deepEqual(f.input(f.peer.rst({ seq: seqAdd(f.peer.seq, 10_000_000) })), []);
  t.deepEqual(f.input(f.peer.rst({ seq: seqAdd(f.peer.seq, -1) })), []);
  t.is(f.state, TcpState.Established);
  t.is(f.conn.counters.get('challengeAcks'), 0);
});

for (const [where, offset] of [['in the window', 0], ['outside the window', 10_000_000]] as const) {
  test(`SYN ${where} in a synchronized state: a challenge ACK, the SYN dropped (RFC 5961 §4.2: "irrespective of the sequence number")`, (t) => {
    const f = established();
    const out = f.input(f.peer.seg({ seq: seqAdd(f.peer.seq, offset), flags: TCP_FLAG_SYN, ack: 0 }));
    t.deepEqual(out.map(ctl), ['ACK']);
    t.is(out[0]!.seq, f.ourSeq(0));
    t.is(out[0]!.ack, f.peer.seq);
    t.is(f.state, TcpState.Established);
    t.deepEqual(f.events(), []);
  });
}

test('an ACK of data never sent: a challenge ACK, the segment dropped (RFC 5961 §5.2; RFC 9293 §3.10.7.4 fifth)', (t) => {
  const f = established();
  const out = f.input(f.peer.data(bytes(100), { ack: f.ourSeq(5000) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(0), 'the data was not taken');
  t.is(f.conn.readable, 0);
  t.is(f.conn.counters.get('ackTooNew'), 1);
});

test('an ACK older than SND.UNA - MAX.SND.WND: an ACK back, the segment dropped (RFC 5961 §5.2: "((SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT)")', (t) => {
  const f = established();
  const out = f.input(f.peer.data(bytes(100), { ack: f.ourSeq(-70_000) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(f.conn.readable, 0);
  t.is(f.conn.counters.get('oldAckIgnored'), 1);
});

test('challenge ACKs are rate-limited (RFC 5961 §7: "an ACK throttling mechanism"): 1000 a second', (t) => {
  const f = established();
  let acks = 0;
  for (let i = 0; i < 1100; i++) acks += f.input(f.peer.rst({ seq: seqAdd(f.peer.seq, 1) })).length;
  t.is(acks, 1000);
  t.is(f.conn.counters.get('challengeAcks'), 1000);
  f.advance(1000);
  t.is(f.input(f.peer.rst({ seq: seqAdd(f.peer.seq, 1) })).length, 1, 'a new second, a new allowance');
});

// ============================================================================ loss

test('RTO: SND.UNA retransmitted, the timer doubled, given up after maxRetransmits with a RST and "timeout" (RFC 6298 §5.4-5.6; RFC 9293 §3.8.3 R2)', (t) => {
  const f = established({ sack: false, maxRetransmits: 3 });
  const t0 = f.now;
  f.write(bytes(3 * MSS));
  const out = f.advance(10_000);
  const rtx = dataOf(out);
  // RTO = max(SRTT + 4·RTTVAR, 200 ms) = 200 ms, doubled after each expiry
  t.deepEqual(rtx.map((s) => s.at - t0), [200, 600, 1400]);
  for (const s of rtx) {
    t.is(s.seq, f.ourSeq(0), '"retransmit the earliest segment that has not been acknowledged"');
    t.is(s.payload.length, MSS, 'one segment, not the window');
  }
  const rst = out.filter((s) => s.flags & TCP_FLAG_RST);
  t.is(rst.length, 1);
  t.is(rst[0]!.at - t0, 3000);
  // <SEQ=SND.NXT><CTL=RST>: somewhere the peer may be, between SND.UNA and the highest byte sent
  const off = seqAdd(rst[0]!.seq, -f.ourSeq(0));
  t.true(off >= 0 && off <= 3 * MSS, `RST at offset ${off}`);
  t.is(f.state, TcpState.Closed);
  t.deepEqual(f.events(), [{ type: 'reset', reason: 'timeout' }, { type: 'closed' }]);
});

test('an ACK after an RTO restarts the timer and the rest is sent again from SND.UNA (RFC 6298 §5.3; RFC 6675 §5.1 go-back)', (t) => {
  const f = established({ sack: false });
  f.write(bytes(3 * MSS));
  const rto = dataOf(f.advance(200));
  t.is(rto.length, 1);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(MSS) })));
  t.deepEqual(out.map((s) => s.seq), [f.ourSeq(MSS), f.ourSeq(2 * MSS)]);
});

test('three duplicate ACKs: fast retransmit of SND.UNA (RFC 5681 §3.2 step 4), NewReno without SACK', (t) => {
  const f = established({ sack: false });
  const sent = dataOf(f.write(bytes(10 * MSS)));
  t.is(sent.length, 10);
  f.advance(RTT);
  const dup = () => f.input(f.peer.seg({ ack: f.ourSeq(0) }));
  t.deepEqual(dataOf(dup()), []);
  t.deepEqual(dataOf(dup()), []);
  const out = dataOf(dup());
  t.is(out.length, 1);
  t.is(out[0]!.seq, f.ourSeq(0));
  t.is(out[0]!.payload.length, MSS);
  t.is(f.conn.counters.get('fastRetransmits'), 1);
  t.is(f.conn.counters.get('newRenoRecoveries'), 1);
  t.is(f.conn.counters.get('dupAcks'), 3);
});

test('a duplicate ACK is one that carries no data and no window change (RFC 5681 §2 "DUPLICATE ACKNOWLEDGMENT")', (t) => {
  const f = established({ sack: false });
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  f.input(f.peer.seg({ ack: f.ourSeq(0), window: 60_000 })); // a window update
  f.input(f.peer.data(bytes(10), { ack: f.ourSeq(0), window: 60_000 })); // data
  f.input(f.peer.seg({ ack: f.ourSeq(0), window: 60_000 }));
  f.input(f.peer.seg({ ack: f.ourSeq(0), window: 60_000 }));
  t.is(f.conn.counters.get('dupAcks'), 2);
  t.is(f.conn.counters.get('fastRetransmits'), 0);
});

// Regression (found by this test, fixed): on a partial ACK processAck sets SND.NXT back to SND.UNA, and pollData then sends again,
// as "new data" from SND.NXT, every segment up to SND.MAX that cwnd admits (inFlight() is
// SND.NXT - SND.UNA, which the rewind made ~0): a go-back-N of the whole window, not one
// segment. RFC 6582 §3.2 step 5: "If this ACK does *not* acknowledge all of the data up to and
// including recover, then this is a partial ACK. In this case, retransmit the first
// unacknowledged segment."
test('NewReno partial ACK: only the first unacknowledged segment is retransmitted (RFC 6582 §3.2 step 5)', (t) => {
  const f = established({ sack: false });
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  // segments 0 and 3 were lost: the peer acknowledges nothing, three times, ...
  for (let i = 0; i < 3; i++) f.input(f.peer.seg({ ack: f.ourSeq(0) }));
  // ... and the retransmission of segment 0 brings a partial ACK up to the second hole
  f.advance(RTT);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(3 * MSS) })));
  // segments 4 to 9 were received (they caused the duplicate ACKs): not sent again
  t.deepEqual(out.map((s) => s.seq), [f.ourSeq(3 * MSS)]);
});

test('NewReno partial ACK: the first unacknowledged segment is retransmitted at once (RFC 6582 §3.2 step 5)', (t) => {
  const f = established({ sack: false });
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  for (let i = 0; i < 3; i++) f.input(f.peer.seg({ ack: f.ourSeq(0) }));
  f.advance(RTT);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(3 * MSS) })));
  t.is(out[0]?.seq, f.ourSeq(3 * MSS));
  t.true(f.conn.info().inRecovery, 'still in recovery until SND.MAX is acknowledged');
  f.input(f.peer.seg({ ack: f.ourSeq(10 * MSS) }));
  t.false(f.conn.info().inRecovery, 'a full ACK ends the recovery');
});

test('SACK: one ACK that SACKs more than (DupThresh-1)·SMSS above SND.UNA starts recovery (RFC 6675 §4 IsLost, §5 step 4)', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [{ start: f.ourSeq(MSS), end: f.ourSeq(4 * MSS) }] })));
  t.is(out.length, 1);
  t.is(out[0]!.seq, f.ourSeq(0));
  t.is(out[0]!.payload.length, MSS);
  t.is(f.conn.counters.get('sackRecoveries'), 1);
  t.is(f.conn.counters.get('dupAcks'), 1, 'one duplicate ACK sufficed: IsLost, not a count of three');
});

test('SACK: fewer SACKed bytes than (DupThresh-1)·SMSS on fewer than DupThresh ACKs: no recovery yet (RFC 6675 §4 IsLost)', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [{ start: f.ourSeq(MSS), end: f.ourSeq(2 * MSS) }] })));
  t.deepEqual(out.filter((s) => s.seq === f.ourSeq(0)), []);
  t.is(f.conn.counters.get('sackRecoveries'), 0);
});

test('SACK recovery repairs every hole that IsLost says is lost, in order (RFC 6675 §4 NextSeg rule 1)', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  const block = (a: number, b: number) => ({ start: f.ourSeq(a * MSS), end: f.ourSeq(b * MSS) });
  // segments 0 and 5 lost
  const first = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [block(1, 4)] })));
  t.deepEqual(first.map((s) => s.seq), [f.ourSeq(0)]);
  const more = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [block(6, 10), block(1, 5)] })));
  t.true(more.some((s) => s.seq === f.ourSeq(5 * MSS)), 'segment 5 retransmitted');
  t.deepEqual(more.filter((s) => s.seq !== f.ourSeq(5 * MSS)).map((s) => s.seq), [], 'nothing SACKed is sent again');
});

test('tail loss probe: with one segment out and no ACK, the last segment is sent again after 2·SRTT + the delayed-ACK allowance, before the RTO (RFC 8985 §7.2, §7.3)', (t) => {
  const f = established();
  const t0 = f.now;
  f.write(bytes(MSS));
  const out = dataOf(f.advance(199));
  t.is(out.length, 1);
  // PTO = 2·SRTT + WCDelAckT = 2·50 + 40
  t.is(out[0]!.at - t0, 2 * RTT + 40);
  t.is(out[0]!.seq, f.ourSeq(0));
  t.is(f.conn.counters.get('tailLossProbes'), 1);
  t.is(f.conn.counters.get('rtoTimeouts'), 0);
});

test('tail loss probe: a new segment when one is available and the peer\'s window allows (RFC 8985 §7.3: "the sender SHOULD send a new, previously unsent segment")', (t) => {
  const f = established();
  const t0 = f.now;
  const sent = dataOf(f.write(bytes(20 * MSS)));
  t.is(sent.length, 10, 'the initial window');
  const out = dataOf(f.advance(199));
  t.is(out.length, 1, 'one probe, before the RTO');
  t.true(out[0]!.at - t0 <= 2 * RTT + 40);
  t.is(out[0]!.seq, f.ourSeq(10 * MSS), 'segment 11, never sent before');
  t.is(f.conn.counters.get('tailLossProbes'), 1);
});

// Regression (found by this test, fixed): buildData arms the PTO only when no PTO is armed, i.e. at the first segment of a burst,
// when FlightSize is one segment, so the WCDelAckT allowance is added even though ten segments
// are out by the end of the burst; and later new data never restarts it. RFC 8985 §7.2: "The
// sender SHOULD start or restart a loss probe PTO timer after transmitting new data" and "If
// FlightSize is one segment, PTO += WCDelAckT" (otherwise PTO = 2·SRTT).
test('tail loss probe: PTO = 2·SRTT after a burst of several segments (RFC 8985 §7.2)', (t) => {
  const f = established();
  const t0 = f.now;
  f.write(bytes(10 * MSS));
  const out = dataOf(f.advance(199));
  t.is(out[0]?.at, t0 + 2 * RTT);
});

test('no tail loss probe without SACK (RFC 8985 §7: TLP relies on SACK to detect the loss it probes for)', (t) => {
  const f = established({ sack: false });
  const t0 = f.now;
  f.write(bytes(MSS));
  const out = dataOf(f.advance(1000));
  t.is(out[0]!.at - t0, 200, 'the first retransmission is the RTO\'s');
  t.is(f.conn.counters.get('tailLossProbes'), 0);
});

// ---------------------------------------------------------------------------- RACK-TLP (RFC 8985)

/** SACK block of our segments [a, b) (in MSS units). */
const segs = (f: Fixture, a: number, b: number) => ({ start: f.ourSeq(a * f.conn.mss), end: f.ourSeq(b * f.conn.mss) });

test('RACK: a segment sent before a delivered one is deemed lost once RACK.rtt + reo_wnd have passed since it was sent, on the reordering timer (RFC 8985 §6.2 step 5, §6.3)', (t) => {
  const f = established();
  const t0 = f.now;
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  // segment 1 SACKed, segment 0 not: one SACKed segment, below DupThresh, so reo_wnd = min_RTT/4
  // (no min_RTT from the log yet: SRTT = 50 ms) = 12.5 ms after RACK.rtt = 50 ms
  t.deepEqual(dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 2)] }))), [], 'not yet: it may be reordered');
  t.deepEqual(dataOf(f.advance(12)), []);
  const out = dataOf(f.advance(1));
  t.is(out[0]?.seq, f.ourSeq(0), 'segment 0 retransmitted');
  t.is(out[0]!.at - t0, RTT + RTT / 4);
  t.is(f.conn.counterGroups().rack.get('rackLost'), 1);
});

test('RACK: a segment delivered late but within the reordering window is never retransmitted, and reordering is seen (RFC 8985 §6.2 step 3)', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 2)] }));
  f.advance(5);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(2 * MSS) })));
  t.deepEqual(out.filter((s) => s.seq === f.ourSeq(0)), []);
  t.deepEqual(dataOf(f.advance(100)).filter((s) => s.seq === f.ourSeq(0)), [], 'nor later');
  t.is(f.conn.counters.get('retransmittedSegments'), 0);
  t.true(f.conn.info().rackReorderingSeen);
});

test('RACK: a D-SACK widens the reordering window by min_RTT/4 (RFC 8985 §6.2 step 4: RACK.reo_wnd_mult += 1)', (t) => {
  const f = established();
  const t0 = f.now;
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  // segments 0-1 acknowledged (min_RTT = 50 ms), with a D-SACK of segment 0 (RFC 2883: below the ACK)
  f.input(f.peer.seg({ ack: f.ourSeq(2 * MSS), sack: [segs(f, 0, 1)] }));
  t.is(f.conn.info().rackReoWndMult, 2);
  // segment 3 SACKed, segment 2 not: lost at RACK.rtt + 2·min_RTT/4 = 50 + 25 ms after it was sent
  f.input(f.peer.seg({ ack: f.ourSeq(2 * MSS), sack: [segs(f, 3, 4)] }));
  t.deepEqual(dataOf(f.advance(24)), []);
  const out = dataOf(f.advance(1));
  t.is(out[0]?.seq, f.ourSeq(2 * MSS));
  t.is(out[0]!.at - t0, RTT + 2 * RTT / 4);
});

test('RACK: without reordering seen, DupThresh SACKed segments make the window 0: the hole below is lost at once (RFC 8985 §6.2 step 4)', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 4)] })));
  t.is(out[0]?.seq, f.ourSeq(0));
  t.is(f.conn.counters.get('rackRecoveries'), 1);
});

test('RACK: a lost retransmission is retransmitted again once a segment sent after it is delivered (RFC 8985 §6.2: RACK applies to retransmissions)', (t) => {
  const f = established();
  f.write(bytes(20 * MSS));
  f.advance(RTT);
  // segment 0 lost: recovery retransmits it
  const first = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 4)] })));
  t.deepEqual(first.map((s) => s.seq), [f.ourSeq(0)]);
  f.advance(1);
  // the rest of the first flight is SACKed: PRR sends new data, after the retransmission
  const fresh = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 10)] })));
  t.true(fresh.length > 0 && fresh.every((s) => s.seq !== f.ourSeq(0)), 'new segments went out');
  f.advance(RTT);
  // they arrive; the retransmission does not
  const top = fresh[fresh.length - 1]!;
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [{ start: f.ourSeq(MSS), end: seqAdd(top.seq, top.payload.length) }] })));
  t.is(out[0]?.seq, f.ourSeq(0), 'segment 0 sent a third time');
  t.is(f.conn.counterGroups().rack.get('rackLostRetransmits'), 1);
  t.is(f.conn.counters.get('rtoTimeouts'), 0);
});

test('RACK off: RFC 6675 DupThresh decides (three SACKed segments), as before', (t) => {
  const f = established({ rack: false });
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  const out = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 4)] })));
  t.is(out[0]?.seq, f.ourSeq(0));
  t.is(f.conn.counters.get('rackRecoveries'), 0);
  t.is(f.conn.counters.get('sackRecoveries'), 1);
});

test('TLP: a probe that retransmitted the last segment and is acknowledged without a D-SACK repaired a loss: one window reduction (RFC 8985 §7.4)', (t) => {
  const f = established();
  f.write(bytes(MSS));
  const before = f.conn.info().cwnd;
  const probe = dataOf(f.advance(199));
  t.is(probe[0]?.seq, f.ourSeq(0), 'the probe');
  f.input(f.peer.seg({ ack: f.ourSeq(MSS) }));
  t.is(f.conn.counters.get('tlpRecoveries'), 1);
  t.true(f.conn.info().cwnd < before);
});

test('TLP: a probe D-SACKed with the ACK of the original repaired nothing: no reduction (RFC 8985 §7.4)', (t) => {
  const f = established();
  f.write(bytes(MSS));
  const before = f.conn.info().cwnd;
  f.advance(199);
  f.input(f.peer.seg({ ack: f.ourSeq(MSS), sack: [segs(f, 0, 1)] }));
  t.is(f.conn.counters.get('tlpRecoveries'), 0);
  t.is(f.conn.info().cwnd, before);
});

test('TLP: no probe is scheduled while the peer has SACKed data: RACK\'s reordering timer covers it (RFC 8985 §7.2)', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  // segment 9 SACKed: 8 segments left unSACKed below it, fewer than DupThresh SACKed
  f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 9, 10)] }));
  f.advance(2 * RTT);
  t.is(f.conn.counters.get('tailLossProbes'), 0);
  t.true(f.conn.counterGroups().rack.get('rackLost') > 0, 'RACK deemed the unSACKed segments lost');
});

// ---------------------------------------------------------------------------- undo

test('D-SACK undo: when every retransmission of a recovery is D-SACKed, cwnd and ssthresh are restored (RFC 3708 §3, Linux tcp_undo_cwnd_reduction)', (t) => {
  const f = established({ timestamps: false });
  f.write(bytes(10 * f.conn.mss));
  f.advance(RTT);
  const before = f.conn.info();
  f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 4)] }));
  t.true(f.conn.info().cwnd < before.cwnd, 'the recovery reduced cwnd');
  // the original segment 0 arrives: everything acknowledged; then the retransmission, D-SACKed
  f.input(f.peer.seg({ ack: f.ourSeq(10 * f.conn.mss) }));
  f.input(f.peer.seg({ ack: f.ourSeq(10 * f.conn.mss), sack: [segs(f, 0, 1)] }));
  t.is(f.conn.counters.get('undoDsack'), 1);
  t.is(f.conn.counters.get('spuriousRetransDetected'), 1);
  t.true(f.conn.info().cwnd >= before.cwnd, `cwnd ${f.conn.info().cwnd} restored to at least ${before.cwnd}`);
  t.is(f.conn.info().ssthresh, before.ssthresh);
  t.is(f.conn.cc.counters.get('undoCwnd'), 1);
});

test('no undo when a retransmission is not D-SACKed (RFC 3708: every retransmission must be)', (t) => {
  const f = established({ timestamps: false });
  f.write(bytes(10 * f.conn.mss));
  f.advance(RTT);
  f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 4)] }));
  const reduced = f.conn.info().ssthresh;
  f.input(f.peer.seg({ ack: f.ourSeq(10 * f.conn.mss) }));
  t.is(f.conn.counters.get('undoDsack'), 0);
  t.is(f.conn.info().ssthresh, reduced);
});

test('Eifel undo: the first ACK covering the retransmission echoes a TSval older than the retransmission\'s: spurious, cwnd restored (RFC 3522 §3.2)', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  const original = f.wire[f.wire.length - 1]!.options.timestamps!.tsVal;
  f.advance(RTT);
  const before = f.conn.info();
  const rtx = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 4)] })));
  t.true(rtx[0]!.options.timestamps!.tsVal > original);
  f.input(f.peer.seg({ ack: f.ourSeq(10 * MSS), options: { timestamps: { tsVal: f.peer.tsVal(), tsEcr: original } } }));
  t.is(f.conn.counters.get('undoEifel'), 1);
  t.true(f.conn.info().cwnd >= before.cwnd);
  t.false(f.conn.info().inRecovery);
});

test('Eifel: an ACK echoing the retransmission\'s TSval is no evidence: no undo (RFC 3522 §3.2 step (4))', (t) => {
  const f = established();
  f.write(bytes(10 * MSS));
  f.advance(RTT);
  const rtx = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(0), sack: [segs(f, 1, 4)] })));
  f.advance(RTT);
  f.input(f.peer.seg({ ack: f.ourSeq(10 * MSS), options: { timestamps: { tsVal: f.peer.tsVal(), tsEcr: rtx[0]!.options.timestamps!.tsVal } } }));
  t.is(f.conn.counters.get('undoEifel'), 0);
  t.is(f.conn.counters.get('spuriousRetransDetected'), 0);
});

/** Until the first RTO (a tail loss probe may come first): what was sent, and SND.MAX before the RTO's retransmission. */
function untilRto(f: Fixture): void {
  for (let i = 0; i < 20 && f.conn.counters.get('rtoTimeouts') === 0; i++) f.advance(50);
}

test('F-RTO: after a timeout, an ACK that advances brings two new segments instead of go-back-N, and a second advancing ACK declares the timeout spurious (RFC 5682 §2.1 steps 2b, 3b)', (t) => {
  const f = established({ timestamps: false });
  const mss = f.conn.mss;
  f.write(bytes(30 * mss));
  const before = f.conn.info();
  untilRto(f);
  t.is(f.wire[f.wire.length - 1]?.seq, f.ourSeq(0), 'the RTO retransmission of segment 0');
  const high = f.conn.info().sndMax;
  // the ACK of the original segments 0-1 (delayed, not lost)
  const two = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(2 * mss) })));
  t.deepEqual(two.map((s) => s.seq), [high, seqAdd(high, mss)], 'two new segments, not segment 2 again');
  f.input(f.peer.seg({ ack: f.ourSeq(4 * mss) }));
  t.is(f.conn.counters.get('undoFrto'), 1);
  t.is(f.conn.counters.get('spuriousRtos'), 1);
  t.false(f.conn.info().rtoRecovery);
  t.true(f.conn.info().cwnd >= before.cwnd);
});

test('F-RTO: a duplicate ACK after the two new segments means the timeout was real: go-back-N from SND.UNA (RFC 5682 §2.1 step 3a)', (t) => {
  const f = established({ timestamps: false });
  const mss = f.conn.mss;
  f.write(bytes(30 * mss));
  untilRto(f);
  f.input(f.peer.seg({ ack: f.ourSeq(mss) }));
  const back = dataOf(f.input(f.peer.seg({ ack: f.ourSeq(mss) })));
  const later = back.concat(dataOf(f.input(f.peer.seg({ ack: f.ourSeq(2 * mss) }))));
  t.true(later.some((s) => s.seq === f.ourSeq(2 * mss)), 'segment 2 retransmitted');
  t.is(f.conn.counters.get('undoFrto'), 0);
});

// ---------------------------------------------------------------------------- RTT resolution

test('RTT samples keep the fraction of a millisecond of `now` (from the send log, not the 1 ms TS clock)', (t) => {
  const f = established();
  f.write(bytes(MSS));
  f.advance(12.345);
  f.input(f.peer.seg({ ack: f.ourSeq(MSS) }));
  t.is(f.conn.rtt.latest!.toFixed(3), '12.345');
});

// ============================================================================ closing

test('half-close: the FIN follows the data; FIN-WAIT-1, FIN-WAIT-2 on the ACK of the FIN; data still received (RFC 9293 §3.10.4, §3.10.7.4 fifth, seventh)', (t) => {
  const f = established();
  f.conn.write(bytes(1000));
  f.conn.shutdown();
  const out = f.flush();
  t.deepEqual(out.map(ctl), ['ACK', 'FIN,ACK']);
  t.is(out[0]!.payload.length, 1000);
  t.is(out[1]!.seq, f.ourSeq(1000), 'the FIN after the last byte');
  t.is(f.state, TcpState.FinWait1);
  t.is(f.conn.write(bytes(10)), 0, 'no more writes after the FIN');
  f.advance(RTT);
  f.input(f.peer.seg());
  t.is(f.state, TcpState.FinWait2);
  // the other direction still flows
  t.deepEqual(f.input(f.peer.data(bytes(MSS, 3))), []);
  const ack = f.input(f.peer.data(bytes(MSS, 5)));
  t.deepEqual(ack.map(ctl), ['ACK']);
  t.is(ack[0]!.ack, f.peerSeq(2 * MSS));
  t.is(f.conn.readable, 2 * MSS);
  const fin = f.input(f.peer.fin());
  t.deepEqual(fin.map(ctl), ['ACK']);
  t.is(fin[0]!.ack, f.peerSeq(2 * MSS + 1));
  t.is(f.state, TcpState.TimeWait);
});

test('the FIN is retransmitted on RTO in FIN-WAIT-1 (RFC 9293 §3.10.8)', (t) => {
  const f = connectionIn('FIN-WAIT-1');
  const out = f.advance(200);
  t.deepEqual(out.map(ctl), ['FIN,ACK']);
  t.is(out[0]!.seq, f.ourSeq(0));
});

test('passive close: FIN → CLOSE-WAIT, "peerClosed", the FIN acknowledged at once; shutdown → LAST-ACK; the ACK of our FIN → CLOSED (RFC 9293 §3.10.7.4 eighth)', (t) => {
  const f = established();
  const ack = f.input(f.peer.fin());
  t.deepEqual(ack.map(ctl), ['ACK']);
  t.is(ack[0]!.ack, f.peerSeq(1));
  t.is(f.state, TcpState.CloseWait);
  t.deepEqual(types(f.events()), ['peerClosed']);
  t.true(f.conn.readEnded);
  // we may still send
  t.is(payloadBytes(f.write(bytes(100))), 100);
  f.conn.shutdown();
  const fin = f.flush();
  t.deepEqual(fin.map(ctl), ['FIN,ACK']);
  t.is(fin[0]!.seq, f.ourSeq(100));
  t.is(f.state, TcpState.LastAck);
  f.advance(RTT);
  f.input(f.peer.seg());
  t.is(f.state, TcpState.Closed);
  t.deepEqual(types(f.events()), ['closed']);
  t.is(f.conn.pollTimeout(), null);
});

test('FIN-WAIT-1 + a FIN that also acknowledges our FIN: TIME-WAIT at once (RFC 9293 §3.10.7.4 eighth: "If our FIN has been ACKed (perhaps in this segment), then enter TIME-WAIT")', (t) => {
  const f = connectionIn('FIN-WAIT-1');
  f.advance(RTT);
  const out = f.input(f.peer.fin());
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peer.seq);
  t.is(f.state, TcpState.TimeWait);
  t.deepEqual(types(f.events()), ['peerClosed', 'timeWait']);
});

test('entering TIME-WAIT is an event: the connection is over for its user, and "closed" follows when TIME-WAIT ends (RFC 9293 §3.10.7.4 CLOSING: "If the ACK acknowledges our FIN, then enter the TIME-WAIT state")', (t) => {
  const f = connectionIn('CLOSING', { timeWaitMs: 2000 });
  f.advance(RTT);
  f.input(f.peer.seg());
  t.is(f.state, TcpState.TimeWait);
  t.deepEqual(types(f.events()), ['timeWait']);
  f.advance(2000);
  t.is(f.state, TcpState.Closed);
  t.deepEqual(types(f.events()), ['closed']);
});

test('a FIN that arrives before the data preceding it takes effect once the gap is filled (RFC 9293 §3.10.7.4: "Segments with higher beginning sequence numbers SHOULD be held")', (t) => {
  const f = established();
  const early = f.input(f.peer.fin({ seq: f.peerSeq(100), payload: bytes(100, 100) }));
  t.deepEqual(early.map(ctl), ['ACK']);
  t.is(early[0]!.ack, f.peerSeq(0));
  t.is(f.state, TcpState.Established, 'the FIN waits for the bytes before it');
  const out = f.input(f.peer.data(bytes(100), { seq: f.peerSeq(0) }));
  t.is(f.state, TcpState.CloseWait);
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peerSeq(201), 'the data and the FIN acknowledged');
  t.deepEqual(f.readAll(), bytes(200));
  t.true(f.conn.readEnded);
});

test('CLOSE-WAIT: text after the peer\'s FIN is ignored (RFC 9293 §3.10.7.4 seventh: "Ignore the segment text")', (t) => {
  const f = connectionIn('CLOSE-WAIT');
  f.input(f.peer.data(bytes(100)));
  t.is(f.conn.readable, 0);
  t.deepEqual(f.events(), []);
});

test('simultaneous close: FIN-WAIT-1 + FIN → CLOSING, then TIME-WAIT on the ACK of our FIN (RFC 9293 §3.6 figure 13)', (t) => {
  const p = establishedPair({ timeWaitMs: 2000 });
  p.a.shutdown();
  p.b.shutdown();
  const finA = p.take('a');
  const finB = p.take('b');
  t.deepEqual(finA.map(ctl), ['FIN,ACK']);
  t.deepEqual(finB.map(ctl), ['FIN,ACK']);
  p.give('a', finA);
  p.give('b', finB);
  t.is(p.a.state, TcpState.Closing);
  t.is(p.b.state, TcpState.Closing);
  const ackA = p.take('a');
  t.deepEqual(ackA.map(ctl), ['ACK']);
  t.is(ackA[0]!.ack, seqAdd(finB[0]!.seq, 1));
  p.give('a', ackA);
  p.settle();
  t.is(p.a.state, TcpState.TimeWait);
  t.is(p.b.state, TcpState.TimeWait);
  p.run(2000);
  t.is(p.a.state, TcpState.Closed);
  t.is(p.b.state, TcpState.Closed);
});

test('TIME-WAIT lasts timeWaitMs (2 MSL), then CLOSED and "closed" (RFC 9293 §3.10.8 TIME-WAIT TIMEOUT)', (t) => {
  const f = connectionIn('TIME-WAIT', { timeWaitMs: 2000 });
  const t0 = f.now;
  t.is(f.conn.pollTimeout(), t0 + 2000);
  f.advance(1999);
  t.is(f.state, TcpState.TimeWait);
  f.advance(1);
  t.is(f.state, TcpState.Closed);
  t.deepEqual(types(f.events()), ['closed']);
});

test('TIME-WAIT: a retransmitted FIN is acknowledged (RFC 9293 §3.10.7.4 fifth: "Acknowledge it")', (t) => {
  const f = connectionIn('TIME-WAIT', { timeWaitMs: 2000 });
  f.advance(1000);
  const out = f.input(f.peer.fin({ seq: seqAdd(f.peer.seq, -1) }));
  t.deepEqual(out.map(ctl), ['ACK']);
  t.is(out[0]!.ack, f.peer.seq);
  t.is(f.state, TcpState.TimeWait);
});

// Regression (found by this test, fixed): the retransmitted FIN lies wholly below RCV.NXT, so the sequence check drops it (with an
// ACK) before receiveFin, whose TIME-WAIT branch restarts the timer, is reached: the timer is
// never restarted. RFC 9293 §3.10.7.4: "TIME-WAIT STATE: The only thing that can arrive in this
// state is a retransmission of the remote FIN. Acknowledge it, and restart the 2 MSL timeout."
// (Linux: tcp_timewait_state_process reschedules the timer for any non-RST segment with ACK.)
test('TIME-WAIT: a retransmitted FIN restarts the 2 MSL timer (RFC 9293 §3.10.7.4: "Acknowledge it, and restart the 2 MSL timeout")', (t) => {
  const f = connectionIn('TIME-WAIT', { timeWaitMs: 2000 });
  f.advance(1000);
  f.input(f.peer.fin({ seq: seqAdd(f.peer.seq, -1) }));
  t.is(f.conn.pollTimeout(), f.now + 2000);
});

test('ABORT in ESTABLISHED: <SEQ=SND.NXT><CTL=RST>, CLOSED (RFC 9293 §3.10.5)', (t) => {
  const f = established();
  f.write(bytes(100));
  f.conn.abort(f.now);
  const out = f.flush();
  t.is(out.length, 1);
  t.true((out[0]!.flags & TCP_FLAG_RST) !== 0);
  t.is(out[0]!.seq, f.ourSeq(100));
  t.is(f.state, TcpState.Closed);
  t.deepEqual(types(f.events()), ['closed']);
  t.is(f.conn.pollTimeout(), null);
  t.is(f.conn.counters.get('resetsSent'), 1);
});

test('ABORT in SYN-SENT: no segment, CLOSED (RFC 9293 §3.10.5: "Delete the TCB, enter CLOSED state")', (t) => {
  const f = synSent();
  f.conn.abort(f.now);
  t.deepEqual(f.flush(), []);
  t.is(f.state, TcpState.Closed);
});

// RFC 9293 §3.10.5 ABORT Call: "CLOSING STATE, LAST-ACK STATE, TIME-WAIT STATE: Respond with "ok"
// and delete the TCB, enter CLOSED state, and return." The reset segment is for SYN-RECEIVED to
// CLOSE-WAIT only (Linux's tcp_need_reset agrees). (A regression test: abort() once sent a RST there.)
for (const state of ['CLOSING', 'LAST-ACK', 'TIME-WAIT'] as const) {
  const run = test;
  run(`ABORT in ${state}: no RST, CLOSED (RFC 9293 §3.10.5: "Respond with \\"ok\\" and delete the TCB")`, (t) => {
    const f = connectionIn(state);
    f.conn.abort(f.now);
    t.is(f.state, TcpState.Closed);
    t.deepEqual(f.flush().map(ctl), []);
  });
}

test('close() in SYN-SENT deletes the TCB (RFC 9293 §3.10.4: "Delete the TCB")', (t) => {
  const f = synSent();
  f.conn.close(f.now);
  t.is(f.state, TcpState.Closed);
  t.deepEqual(f.advance(10_000), []);
});

// RST received, state by state (RFC 9293 §3.10.7.4 second, with the RFC 5961 check: SEG.SEQ = RCV.NXT)
const resetBehaviour: Record<Exclude<StateName, 'SYN-SENT'>, { signal: boolean; rule: string }> = {
  'SYN-RECEIVED': { signal: false, rule: '"return this connection to LISTEN state ... The user need not be informed"' },
  'ESTABLISHED': { signal: true, rule: '"Users should also receive an unsolicited general \\"connection reset\\" signal. Enter the CLOSED state"' },
  'FIN-WAIT-1': { signal: true, rule: '"connection reset" signal, CLOSED' },
  'FIN-WAIT-2': { signal: true, rule: '"connection reset" signal, CLOSED' },
  'CLOSE-WAIT': { signal: true, rule: '"connection reset" signal, CLOSED' },
  'CLOSING': { signal: false, rule: '"enter the CLOSED state, delete the TCB, and return"' },
  'LAST-ACK': { signal: false, rule: '"enter the CLOSED state, delete the TCB, and return"' },
  'TIME-WAIT': { signal: false, rule: '"enter the CLOSED state, delete the TCB, and return"' },
};
for (const [state, { signal, rule }] of Object.entries(resetBehaviour) as Array<[Exclude<StateName, 'SYN-SENT'>, { signal: boolean; rule: string }]>) {
  test(`RST at RCV.NXT in ${state}: ${rule} (RFC 9293 §3.10.7.4 second)`, (t) => {
    const f = connectionIn(state);
    f.advance(1);
    const out = f.input(f.peer.rst());
    t.deepEqual(out, [], 'no reply to a RST');
    t.is(f.state, TcpState.Closed);
    const events = f.events();
    t.is(events.at(-1)?.type, 'closed');
    if (signal) t.deepEqual(events, [{ type: 'reset', reason: 'peerReset' }, { type: 'closed' }]);
    t.is(f.conn.pollTimeout(), null, 'every timer stopped');
    t.deepEqual(f.advance(100_000), [], 'and nothing more is ever sent');
  });
}

test('RST in SYN-RECEIVED reached from SYN-SENT (simultaneous open): "the connection was refused; signal the user \\"connection refused\\"" (RFC 9293 §3.10.7.4 second)', (t) => {
  const f = synSent();
  f.input(f.peer.syn());
  t.is(f.state, TcpState.SynReceived);
  f.flush();
  f.input(f.peer.rst());
  t.is(f.state, TcpState.Closed);
  t.deepEqual(f.events(), [{ type: 'reset', reason: 'refused' }, { type: 'closed' }]);
});

// ============================================================================ keep-alive

test('keep-alive: after keepAliveMs idle, probes <SEQ=SND.NXT-1><ACK=RCV.NXT><CTL=ACK>; reset after keepAliveProbes unanswered (RFC 9293 §3.8.4)', (t) => {
  const f = established({ keepAliveMs: 10_000, keepAliveIntervalMs: 1000, keepAliveProbes: 3 });
  const t0 = f.now;
  const out = f.advance(20_000);
  const probes = out.filter((s) => ctl(s) === 'ACK');
  t.deepEqual(probes.map((s) => s.at - t0), [10_000, 11_000, 12_000]);
  for (const p of probes) {
    t.is(p.seq, LOCAL_ISS, 'SND.NXT - 1');
    t.is(p.ack, f.peerSeq(0));
    t.is(p.payload.length, 0);
  }
  const rst = out.filter((s) => s.flags & TCP_FLAG_RST);
  t.deepEqual(rst.map((s) => s.at - t0), [13_000]);
  t.is(f.state, TcpState.Closed);
  t.deepEqual(f.events(), [{ type: 'reset', reason: 'timeout' }, { type: 'closed' }]);
  t.is(f.conn.counters.get('keepAlivesSent'), 3);
});

test('keep-alive: an answer resets the count and the idle time (RFC 9293 §3.8.4)', (t) => {
  const f = established({ keepAliveMs: 10_000, keepAliveIntervalMs: 1000, keepAliveProbes: 3 });
  const t0 = f.now;
  f.advance(10_000);
  f.advance(10);
  f.input(f.peer.seg());
  const out = f.advance(10_000);
  t.deepEqual(out.map((s) => s.at - t0), [20_010]);
  t.is(f.state, TcpState.Established);
});

test('keep-alive is off by default (RFC 9293 §3.8.4: "MUST default to off")', (t) => {
  const f = established();
  t.is(f.conn.pollTimeout(), null);
  t.deepEqual(f.advance(3_600_000), []);
});

// ============================================================================ misc

test('data and FIN bookkeeping survive the sequence space wrapping (RFC 9293 §3.4: "modulo 2**32")', (t) => {
  // our ISS is 1 KiB below 2**32: 4 KiB of data wrap it
  const f = established();
  const data = bytes(4096, 1);
  const segs = dataOf(f.write(data));
  t.is(payloadBytes(segs), 4096);
  t.true(segs.some((s) => s.seq < LOCAL_ISS), 'a segment after the wrap');
  f.advance(RTT);
  f.input(f.peer.seg());
  t.is(f.conn.info().sndUna, f.ourSeq(4096));
  t.is(f.conn.unacknowledged, 0);
  f.conn.shutdown();
  const fin = f.flush();
  t.is(fin[0]!.seq, f.ourSeq(4096));
});

test('a passive connection carries data both ways (acceptSyn, then the RFC 9293 §3.10.7.4 rules)', (t) => {
  const f = acceptedSocket();
  const out = f.write(bytes(100));
  t.is(out[0]!.seq, f.ourSeq(0));
  t.is(out[0]!.ack, f.peerSeq(0));
  f.input(f.peer.data(bytes(50), { ack: f.ourSeq(100) }));
  t.is(f.conn.readable, 50);
  t.is(f.conn.unacknowledged, 0);
});

// ---------------------------------------------------------------- TSO deferral (tsoDefer)
// After Linux's tcp_tso_should_defer: with TSO, a window that opened by less than a
// super-segment's goal (1 ms at the pacing rate, at least two segments) right after a send, with
// an ACK due within half an RTT, waits for the next ACK; the data then goes as one super-segment.

/** ESTABLISHED with TSO, 1 MB written; the initial window went out at once (t = RTT), and its first segment was ACKed at t = 2 RTT. */
/** The MSS with timestamps. */
const SMSS = 1448;

function tsoFlow(tsoDefer: boolean): Fixture {
  const f = established({ tsoMaxPayload: 64000, tsoDefer }, { window: 65535, windowScale: 7 });
  f.write(bytes(1 << 20));
  f.advance(50);
  f.input(f.peer.seg({ ack: f.ourSeq(SMSS) }));
  return f;
}

test('TSO deferral: a window opened by one segment right after a send waits for the next ACK, and the two segments go as one super-segment', (t) => {
  const f = tsoFlow(true);
  const una = SMSS;
  f.advance(0.1);
  // half a segment ACKed: slow start opens the window by one segment (half freed, half grown)
  t.deepEqual(f.input(f.peer.seg({ ack: f.ourSeq(una + SMSS / 2) })), [], 'held for the next ACK');
  t.is(f.conn.counters.get('tsoDeferrals'), 1);
  f.advance(0.1);
  const out = f.input(f.peer.seg({ ack: f.ourSeq(una + SMSS) }));
  t.is(out.length, 1, 'one super-segment');
  t.is(out[0]!.payload.length, 2 * SMSS);
  t.is(out[0]!.gsoSize, SMSS);
});

test('TSO deferral: without it (tsoDefer off) the same ACK sends its segment at once', (t) => {
  const f = tsoFlow(false);
  f.advance(0.1);
  const out = f.input(f.peer.seg({ ack: f.ourSeq(SMSS + SMSS / 2) }));
  t.is(out.length, 1);
  t.is(out[0]!.payload.length, SMSS);
  t.is(f.conn.counters.get('tsoDeferrals'), 0);
});

test('TSO deferral: not after a pause (the last send more than 1 ms ago): a burst after a pause is not made larger', (t) => {
  const f = tsoFlow(true);
  f.advance(2);
  const out = f.input(f.peer.seg({ ack: f.ourSeq(SMSS + SMSS / 2) }));
  t.is(out.length, 1, 'sent at once');
  t.is(out[0]!.payload.length, SMSS);
  t.is(f.conn.counters.get('tsoDeferrals'), 0);
});
