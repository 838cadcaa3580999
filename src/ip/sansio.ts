// The sans-IO contract shared by every network node of mptun (DESIGN.md, "Layers"; CONVENTIONS.md §3).
//
// A node never reads a clock and never does I/O. Its driver (the TUN engine in production,
// the simulator in `test/sim` in tests) feeds it packets and the current time, asks it for
// packets to send, and asks it for its next deadline. The same code therefore runs on a real
// device and in virtual time, and a failing run replays exactly.
//
// The driver's loop, for every node:
//
//   on packet from interface i at time t:   node.handleInput(t, i, packet)
//   when t >= node.pollTimeout():           node.handleTimeout(t)
//   after either, and after any call the application makes on the node:
//     while ((tx = node.pollTransmit(t)) !== null) send tx.packet out of interface tx.iface
//     re-arm the single timer at node.pollTimeout()

/**
 * A point in time, in milliseconds (fractional allowed) on the driver's clock. The origin is
 * the driver's: the simulator starts at 0, the engine uses a monotonic clock. Only differences
 * and comparisons have meaning.
 */
export type Instant = number;

/** The earlier of two deadlines (null: none), without building an array (pollTimeout runs on every tick). */
export function earliest(a: Instant | null, b: Instant | null): Instant | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** A packet a node wants sent, and the interface (the node's own numbering, from 0) it leaves by. */
export interface Transmit {
  iface: number;
  packet: Buffer;
}

/**
 * A network node driven from outside: a TCP/MPTCP stack, a middlebox, a test traffic source.
 *
 * Buffer ownership:
 * - `handleInput`: the node may keep `packet`; the caller gives it up and will not reuse or
 *   modify it.
 * - `pollTransmit`: the returned `packet` is valid until the next call on the node, so a node
 *   may reuse its output buffers; a caller that holds the packet longer (a link in flight)
 *   copies it.
 */
export interface SansIoNode {
  /** A packet arrived on interface `iface` at `now`. Malformed input is counted and dropped, never thrown. */
  handleInput(now: Instant, iface: number, packet: Buffer): void;
  /** The deadline last returned by `pollTimeout` has been reached (`now` >= it). Spurious calls are harmless. */
  handleTimeout(now: Instant): void;
  /** The next packet to send at `now`, or null when there is nothing more to send now. */
  pollTransmit(now: Instant): Transmit | null;
  /** The earliest instant at which `handleTimeout` must be called, or null when no timer is armed. */
  pollTimeout(): Instant | null;
}

/**
 * A packet for a device with offloads (the TUN device with a virtio-net header): what the
 * engine needs to fill the header. The stacks produce it; the engine consumes it.
 */
export interface DeviceOutput {
  /** headroom bytes (for the device header), then the IP packet */
  buffer: Buffer;
  /** IP header length, where the TCP header (and its checksum) starts */
  l4Offset: number;
  /** IP + TCP header bytes, for GSO */
  headerLen: number;
  /** > 0: a TSO super-segment to cut at this payload size */
  gsoSize: number;
  ipVersion: 4 | 6;
  /** the TCP checksum holds only the pseudo-header sum: the device completes it */
  checksumPartial: boolean;
}
