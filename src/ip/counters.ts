// A counter for every drop and every decision (CONVENTIONS.md 9), in the manner of the Linux
// MIB counters (`nstat`) and gVisor's stats: tests assert on them, `mptun status` shows them.

/** The lists of counter names checked (a name Object.prototype has would read as a count). */
const CHECKED = new WeakSet<readonly string[]>();

/** The counts of a set that has counted nothing: shared and frozen. */
const NONE: Readonly<Record<string, number>> = Object.freeze({});

/**
 * A fixed set of named counters. The names are given once; only the counters that counted are
 * held (a name absent counts 0): a connection holds some 27 sets of up to 47 counters, of which
 * a connection that carries a little and idles counts a dozen in all, and thousands of
 * connections are held. `increment` on the packet path is a keyed add; it neither throws nor
 * allocates, but for a counter's first count.
 */
export class CounterSet<K extends string> {
  readonly names: readonly K[];
  private values: Partial<Record<K, number>> = NONE as Partial<Record<K, number>>;

  constructor(names: readonly K[]) {
    this.names = names;
    if (!CHECKED.has(names)) {
      for (const n of names) if (n in Object.prototype) throw new Error(`counter name ${n}: Object.prototype has it`);
      CHECKED.add(names);
    }
  }

  /** This set's own counts, made on the first count. */
  private own(): Partial<Record<K, number>> {
    if (this.values === NONE) this.values = {};
    return this.values;
  }

  increment(name: K, by = 1): void {
    const v = this.values === NONE ? this.own() : this.values;
    v[name] = (v[name] ?? 0) + by;
  }

  get(name: K): number {
    return this.values[name] ?? 0;
  }

  /** A copy of every counter, for display and for tests (`t.like(c.snapshot(), { badChecksum: 1 })`). */
  snapshot(): Record<K, number> {
    const out = {} as Record<K, number>;
    for (const name of this.names) out[name] = this.values[name] ?? 0;
    return out;
  }

  /** Only the counters that are not zero. */
  nonZero(): Partial<Record<K, number>> {
    const out: Partial<Record<K, number>> = {};
    for (const name of this.names) {
      const x = this.values[name];
      if (x !== undefined && x !== 0) out[name] = x;
    }
    return out;
  }

  reset(): void {
    this.values = NONE as Partial<Record<K, number>>;
  }

  /** Adds every counter of `other` (a set of the same names) to this one. */
  addAll(other: CounterSet<K>): void {
    const from = other.values;
    if (from === NONE) return; // all zero
    const v = this.own();
    for (const name in from) v[name] = (v[name] ?? 0) + from[name]!;
  }
}

/** Counter sets by group name: the counters of one object and its parts (a connection's own, its RTT estimator's ...). */
export type CounterGroups = { readonly [group: string]: CounterSet<string> };

/** What `CounterTotals.total` gives: per group, every counter by name. */
export type CounterGroupValues<G extends CounterGroups> = { [K in keyof G]: Record<string, number> };

/**
 * Process-wide totals of the counters of objects that come and go (connections): what the
 * closed ones counted, folded in once when each closes, plus what the open ones count now,
 * added only when the totals are read. Nothing is added on the packet path; the totals never
 * go down when a connection closes (an object must be folded exactly when it stops being
 * listed as open).
 */
export class CounterTotals<G extends CounterGroups> {
  /** The sums of the closed objects' counters. */
  readonly closed: G;
  /** Objects folded in. */
  folded = 0;

  constructor(make: () => G) {
    this.closed = make();
  }

  /** An object closes: its counters join the totals. */
  fold(sets: G): void {
    for (const group of Object.keys(this.closed)) this.closed[group]!.addAll(sets[group]!);
    this.folded++;
  }

  /** Closed plus `open`, per group. */
  total(open: Iterable<G>): CounterGroupValues<G> {
    const out = {} as Record<string, Record<string, number>>;
    for (const group of Object.keys(this.closed)) out[group] = this.closed[group]!.snapshot();
    for (const sets of open) {
      for (const group of Object.keys(out)) {
        const into = out[group]!;
        const from = sets[group]!;
        for (const name of from.names) into[name]! += from.get(name);
      }
    }
    return out as CounterGroupValues<G>;
  }
}

/**
 * Why an IP packet was dropped. Each is also a counter name, so a check that returns a
 * `DropReason` is counted with `counters.increment(reason)`.
 */
export const IP_DROP_REASONS = [
  /** Shorter than the fixed header, or a total/payload length that disagrees with the buffer or the header. */
  'badLength',
  /** The version nibble is neither 4 nor 6, or not the one the parser expected. */
  'badVersion',
  /** IPv4 IHL below 5 (a header shorter than 20 bytes), or longer than the total length. */
  'badHeaderLength',
  /** The IPv4 header checksum does not verify. */
  'badChecksum',
  /** IPv4 options that run past the end of the buffer or of the header (IHL), or an option length below 2. */
  'truncatedOptions',
  /** An IPv4 fragment (MF set or offset not zero), or an IPv6 Fragment header that is not an atomic fragment: we do not reassemble. */
  'fragment',
  /** IPv6 extension headers that run past the end of the payload. */
  'truncatedExtensionHeader',
  /** An IPv6 extension header we cannot walk past (a second Hop-by-Hop, one after another header, ESP). */
  'badExtensionHeader',
] as const;

export type DropReason = (typeof IP_DROP_REASONS)[number];

/** ICMP echo responder decisions and drops. */
export const ICMP_COUNTER_NAMES = [
  /** An echo request was answered (a reply was queued). */
  'icmpEchoReplied',
  /** An echo request whose ICMP (v4) or ICMPv6 (pseudo-header included) checksum is wrong. */
  'icmpBadChecksum',
  /** An ICMP message shorter than the 8-byte echo header. */
  'icmpTruncated',
  /** An echo request to a multicast or broadcast destination, or from a source we cannot answer (unspecified, multicast, broadcast). */
  'icmpEchoNotUnicast',
  /** The reply queue was full, so the reply was dropped. */
  'icmpReplyQueueFull',
] as const;

/** Decisions of the layer above, counted here so that one set covers the IP path. */
export const IP_DECISION_NAMES = [
  /** A well-formed packet whose upper-layer protocol nobody handles. */
  'unsupportedProtocol',
] as const;

export const IP_COUNTER_NAMES = [...IP_DROP_REASONS, ...IP_DECISION_NAMES, ...ICMP_COUNTER_NAMES] as const;

export type IpCounterName = (typeof IP_COUNTER_NAMES)[number];

/** The counters of the IP layer. */
export class IpCounters extends CounterSet<IpCounterName> {
  constructor() {
    super(IP_COUNTER_NAMES);
  }
}

const DROP_REASON_SET: ReadonlySet<string> = new Set(IP_DROP_REASONS);

/** True when `x` (e.g. the result of `Ipv4Packet.check`) is a drop reason rather than a view. */
export function isDropReason(x: unknown): x is DropReason {
  return typeof x === 'string' && DROP_REASON_SET.has(x);
}
