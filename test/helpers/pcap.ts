// Writing packets to a file Wireshark reads: a classic pcap (global header + records), linktype
// RAW (101), each record an IP packet. For tests that ask tshark's opinion of what we emit.

export const LINKTYPE_RAW = 101;

/** Wireshark's expert severities (epan/proto.h). */
export const PI_CHAT = 0x00200000;
export const PI_NOTE = 0x00400000;
export const PI_WARN = 0x00600000;
export const PI_ERROR = 0x00800000;

export function pcap(packets: readonly Buffer[]): Buffer {
  const out = Buffer.alloc(24 + packets.reduce((n, p) => n + 16 + p.length, 0));
  out.writeUInt32LE(0xa1b2c3d4, 0); // magic, microsecond timestamps
  out.writeUInt16LE(2, 4); // version 2.4
  out.writeUInt16LE(4, 6);
  out.writeInt32LE(0, 8); // thiszone
  out.writeUInt32LE(0, 12); // sigfigs
  out.writeUInt32LE(65535, 16); // snaplen
  out.writeUInt32LE(LINKTYPE_RAW, 20);
  let o = 24;
  packets.forEach((p, i) => {
    out.writeUInt32LE(1700000000 + i, o);
    out.writeUInt32LE(0, o + 4);
    out.writeUInt32LE(p.length, o + 8);
    out.writeUInt32LE(p.length, o + 12);
    p.copy(out, o + 16);
    o += 16 + p.length;
  });
  return out;
}
