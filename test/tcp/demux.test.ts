// Demultiplexing by 4-tuple without strings (src/tcp/demux.ts): a packet's addresses and ports,
// read where they lie, find the connection whose remote end is the packet's source and whose
// local end is its destination; nothing else matches, IPv4 and IPv6 alike; collisions of the
// hash are told apart field by field.
import test from 'ava';
import { TupleTable } from '../../src/tcp/demux.js';
import type { Endpoint } from '../../src/tcp/connection.js';
import { parseIpAddress } from '../../src/ip/address.js';

interface Conn {
  local: Endpoint;
  remote: Endpoint;
  name: string;
}

const ep = (addr: string, port: number): Endpoint => ({ addr: parseIpAddress(addr).bytes, port });
const conn = (name: string, remote: Endpoint, local: Endpoint): Conn => ({ name, remote, local });

/** The address bytes of a packet as the table reads them: source at 12, destination at 16 (IPv4's offsets). */
function ipv4Header(src: string, dst: string): Buffer {
  const b = Buffer.alloc(20);
  parseIpAddress(src).bytes.copy(b, 12);
  parseIpAddress(dst).bytes.copy(b, 16);
  return b;
}

test('a packet finds the connection of its tuple: its source is the remote end, its destination the local end', (t) => {
  const table = new TupleTable<Conn>(7);
  const a = conn('a', ep('192.0.2.10', 50000), ep('203.0.113.7', 443));
  const b = conn('b', ep('192.0.2.10', 50001), ep('203.0.113.7', 443));
  const c = conn('c', ep('192.0.2.10', 50000), ep('203.0.113.8', 443));
  for (const x of [a, b, c]) table.add(x);
  t.is(table.size, 3);
  const p = ipv4Header('192.0.2.10', '203.0.113.7');
  t.is(table.lookup(p, 12, 16, 4, 50000, 443), a);
  t.is(table.lookup(p, 12, 16, 4, 50001, 443), b);
  t.is(table.lookup(ipv4Header('192.0.2.10', '203.0.113.8'), 12, 16, 4, 50000, 443), c);
  // the reverse direction is another tuple
  t.is(table.lookup(ipv4Header('203.0.113.7', '192.0.2.10'), 12, 16, 4, 443, 50000), undefined);
  t.is(table.lookup(p, 12, 16, 4, 50002, 443), undefined);
  t.is(table.get(ep('192.0.2.10', 50001), ep('203.0.113.7', 443)), b);
});

test('IPv6 tuples, and an IPv4 tuple never matches an IPv6 connection', (t) => {
  const table = new TupleTable<Conn>();
  const v6 = conn('v6', ep('2001:db8::1', 40000), ep('2001:db8:ffff::2', 80));
  table.add(v6);
  const p = Buffer.alloc(40);
  parseIpAddress('2001:db8::1').bytes.copy(p, 8);
  parseIpAddress('2001:db8:ffff::2').bytes.copy(p, 24);
  t.is(table.lookup(p, 8, 24, 16, 40000, 80), v6);
  t.is(table.lookup(p, 8, 24, 16, 40000, 81), undefined);
  t.is(table.lookup(ipv4Header('32.1.13.184', '0.0.0.0'), 12, 16, 4, 40000, 80), undefined);
});

test('every connection of many is found, and removed ones are gone (collisions told apart)', (t) => {
  // a seed-less table of 20 000 tuples of one address pair: some hashes collide
  const table = new TupleTable<Conn>();
  const all: Conn[] = [];
  for (let port = 1024; port < 21024; port++) {
    const x = conn(String(port), ep('10.0.0.1', port), ep('10.0.0.2', 80));
    all.push(x);
    table.add(x);
  }
  const p = ipv4Header('10.0.0.1', '10.0.0.2');
  t.true(all.every((x) => table.lookup(p, 12, 16, 4, x.remote.port, 80) === x));
  for (const x of all.filter((_, i) => i % 2 === 0)) t.true(table.delete(x));
  t.false(table.delete(all[0]!));
  t.is(table.size, 10_000);
  t.true(all.every((x, i) => table.lookup(p, 12, 16, 4, x.remote.port, 80) === (i % 2 === 0 ? undefined : x)));
  t.is([...table.values()].length, 10_000);
});

test('a connection equal in its tuple but another object is not deleted in its place', (t) => {
  const table = new TupleTable<Conn>();
  const a = conn('a', ep('192.0.2.1', 1), ep('192.0.2.2', 2));
  const twin = conn('twin', ep('192.0.2.1', 1), ep('192.0.2.2', 2));
  table.add(a);
  t.false(table.delete(twin));
  t.is(table.get(a.remote, a.local), a);
});
