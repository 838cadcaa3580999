// The MPTCP option (RFC 8684, version 1): one TCP option kind, 30, whose first data octet
// carries a subtype in its high nibble. A view over the raw option (`MptcpOptionView`, checked
// once for its kind, length and subtype octet) and a plain representation per subtype
// (`MptcpOption`, a discriminated union on `type`) with `parseMptcpOption`, `mptcpOptionLen`
// and `emitMptcpOption` (CONVENTIONS.md 1).
//
// RFC 8684 §3 signals every MPTCP operation in one TCP option kind (30, "Multipath TCP (MPTCP)"
// in the IANA registry), whose 4-bit subtype field says which message it is.
//
// Quotes: RFC 8684's own words where a sentence is in quotation marks (the IANA tables and
// Linux's comments, which quote it, were checked; the rest is from the RFC's text as
// remembered and deserves a second look against the RFC); paraphrase where there are none.
//
// How the options travel: the TCP codec (`src/tcp/options.ts`) hands each kind-30 option over
// raw, kind and length octets included (`TcpOptions.mptcp: Buffer[]`), and on emit copies the
// Buffers it is given, each padded with NOPs to a multiple of 4. So `parseMptcpOption` takes one
// such Buffer and `emitMptcpOptionBuffer` makes one.
//
// The layouts are the ones Linux writes and reads (net/mptcp/options.c, `mptcp_write_options`,
// `mptcp_parse_option`), and the tests check them against options captured from the kernel
// (test/mptcp/fixtures.ts). Where the option must be told apart by the segment that carries
// it (MP_CAPABLE and MP_JOIN), the SYN and ACK flags of the segment are an input
// (`MptcpParseContext`), as in Linux.
//
// Nothing here throws on input from the network: a malformed option is counted and `null` is
// returned. Emitting throws a RangeError only on a programming error (a representation that no
// wire form has, or a buffer too small), as the TCP emitter does.
//
// 64-bit data sequence numbers and keys are `bigint`s. Where the wire carries only the low 32
// bits (a DSS with the "a" or "m" flag clear), the representation holds those 32 bits as they
// came, `dataAck8`/`dsn8` false, and the connection expands them against the last value seen
// (CONVENTIONS.md 7).

import { internAddress } from '../ip/address.js';
import { readU16, readU32, writeU16, writeU32 } from '../ip/bytes.js';
import { CounterSet } from '../ip/counters.js';
import { TCP_MAX_OPTIONS_LEN, TCP_OPT_MPTCP } from '../tcp/options.js';

// Subtypes (RFC 8684 §8, "MPTCP Option Subtypes" registry).

/** RFC 8684 §8: "0x0 MP_CAPABLE Multipath Capable" (§3.1). */
export const MPTCP_SUB_CAPABLE = 0x0;
/** RFC 8684 §8: "0x1 MP_JOIN Join Connection" (§3.2). */
export const MPTCP_SUB_JOIN = 0x1;
/** RFC 8684 §8: "0x2 DSS Data Sequence Signal (Data ACK and Data Sequence Mapping)" (§3.3). */
export const MPTCP_SUB_DSS = 0x2;
/** RFC 8684 §8: "0x3 ADD_ADDR Add Address" (§3.4.1). */
export const MPTCP_SUB_ADD_ADDR = 0x3;
/** RFC 8684 §8: "0x4 REMOVE_ADDR Remove Address" (§3.4.2). */
export const MPTCP_SUB_REMOVE_ADDR = 0x4;
/** RFC 8684 §8: "0x5 MP_PRIO Change Subflow Priority" (§3.3.8). */
export const MPTCP_SUB_PRIO = 0x5;
/** RFC 8684 §8: "0x6 MP_FAIL Fallback" (§3.7). */
export const MPTCP_SUB_FAIL = 0x6;
/** RFC 8684 §8: "0x7 MP_FASTCLOSE Fast Close" (§3.5). */
export const MPTCP_SUB_FASTCLOSE = 0x7;
/** RFC 8684 §8: "0x8 MP_TCPRST Subflow Reset" (§3.6). */
export const MPTCP_SUB_TCPRST = 0x8;
/** RFC 8684 §8: "0xf MP_EXPERIMENTAL Reserved for Private Use". Not parsed: counted as unknown. */
export const MPTCP_SUB_EXPERIMENTAL = 0xf;

/**
 * RFC 8684 §3.1: "the remaining 4 bits of this octet specify the MPTCP version in use (for this
 * specification, this is 1)".
 */
export const MPTCP_VERSION = 1;

// Offsets within an option (every subtype): kind, length, then the octet whose high nibble is
// the subtype and whose low nibble is the subtype's own (version, flags, reserved).
export const MPTCP_OFF_KIND = 0;
export const MPTCP_OFF_LENGTH = 1;
export const MPTCP_OFF_SUBTYPE = 2;
/** The octet after the subtype octet: MP_CAPABLE and DSS flags, MP_JOIN and ADD_ADDR Address ID, MP_TCPRST reason. */
export const MPTCP_OFF_BYTE3 = 3;
/** Kind, length and subtype octets: the least an MPTCP option can be. */
export const MPTCP_OPTLEN_MIN = 3;
/** The option-length octet is one octet, and the TCP options area is 40 bytes: no MPTCP option is longer. */
export const MPTCP_OPTLEN_MAX = TCP_MAX_OPTIONS_LEN;

// MP_CAPABLE (RFC 8684 §3.1).
//
//   |  Kind  | Length |Subtype|Version|A|B|C|D|E|F|G|H|
//   |      Option Sender's Key (64 bits)     (if option Length > 4)
//   |      Option Receiver's Key (64 bits)   (if option Length > 12)
//   |  Data-Level Length (16 bits)  |  Checksum (16 bits, optional) |

/**
 * RFC 8684 §3.1: "A: The leftmost bit, labeled "A", SHOULD be set to 1 to indicate "Checksum
 * Required", unless the system administrator has decided that checksums are not required".
 */
export const MPC_FLAG_CHECKSUM_REQUIRED = 0x80;
/**
 * RFC 8684 §3.1: "B: The second bit, labeled "B", is an extensibility flag and MUST be set to
 * 0 for current implementations."
 */
export const MPC_FLAG_EXTENSIBILITY = 0x40;
/**
 * RFC 8684 §3.1: "C: The third bit, labeled "C", is set to 1 to indicate that the sender of
 * this option will not accept additional MPTCP subflows to the source address and port"
 * (IANA: "Do not attempt to establish new subflows to the source address."; Linux:
 * MPTCP_CAP_DENY_JOIN_ID0, 0x20; Wireshark: tcp.options.mptcp.nomoresubflows.flag, 0x20).
 */
export const MPC_FLAG_NO_MORE_SUBFLOW_ADDR = 0x20;
/** RFC 8684 §3.1: "The remaining bits, labeled "D" through "H", are used for crypto algorithm negotiation." D-G are unassigned. */
export const MPC_FLAGS_UNASSIGNED = 0x1e;
/**
 * RFC 8684 §3.1: "Currently, only the rightmost bit, labeled "H", is assigned. Bit "H"
 * indicates the use of HMAC-SHA256".
 */
export const MPC_FLAG_HMAC_SHA256 = 0x01;

/** The SYN: subtype, version and flags only (RFC 8684 §3.1: v1 sends no key on the SYN). */
export const MPC_LEN_SYN = 4;
/** The SYN/ACK: the option sender's key. */
export const MPC_LEN_SYNACK = 12;
/** The third ACK: both keys. */
export const MPC_LEN_ACK = 20;
/** The first data, sent with MP_CAPABLE: both keys and the data-level length. */
export const MPC_LEN_ACK_DATA = 22;
/** The first data with a checksum. */
export const MPC_LEN_ACK_DATA_CSUM = 24;
export const MPC_OFF_SENDER_KEY = 4;
export const MPC_OFF_RECEIVER_KEY = 12;
export const MPC_OFF_DATA_LEN = 20;
export const MPC_OFF_CHECKSUM = 22;

// MP_JOIN (RFC 8684 §3.2).
//
//   SYN      |Kind|Length=12|Subtype|(rsv)|B| Address ID | Receiver's Token (32) | Sender's Random Number (32)
//   SYN/ACK  |Kind|Length=16|Subtype|(rsv)|B| Address ID | Sender's Truncated HMAC (64) | Sender's Random Number (32)
//   ACK      |Kind|Length=24|Subtype|  (reserved)       | Sender's HMAC (160)

/** RFC 8684 §3.2: the B bit says whether the sender would like this subflow to be a backup path (B=1) or used at once. */
export const MPJ_FLAG_BACKUP = 0x01;
export const MPJ_LEN_SYN = 12;
export const MPJ_LEN_SYNACK = 16;
export const MPJ_LEN_ACK = 24;
export const MPJ_OFF_ADDRESS_ID = 3;
export const MPJ_OFF_TOKEN = 4;
export const MPJ_OFF_SYN_NONCE = 8;
export const MPJ_OFF_TRUNCATED_HMAC = 4;
export const MPJ_OFF_SYNACK_NONCE = 12;
export const MPJ_OFF_HMAC = 4;
/** RFC 8684 §3.2: the third ACK carries "Sender's HMAC (160 bits)". */
export const MPJ_HMAC_LEN = 20;
/** RFC 8684 §3.2: the SYN/ACK carries "Sender's Truncated HMAC (64 bits)". */
export const MPJ_TRUNCATED_HMAC_LEN = 8;

// DSS (RFC 8684 §3.3).
//
//   |Kind|Length|Subtype|(reserved)|F|m|M|a|A|
//   |  Data ACK (4 or 8 octets, depending on flags)                 |
//   |  Data sequence number (4 or 8 octets, depending on flags)     |
//   |  Subflow Sequence Number (4 octets)                           |
//   |  Data-Level Length (2 octets) |  Checksum (2 octets)          |

/** RFC 8684 §3.3: "A = Data ACK present". */
export const DSS_FLAG_DATA_ACK = 0x01;
/** RFC 8684 §3.3: "a = Data ACK is 8 octets (if not set, Data ACK is 4 octets)". */
export const DSS_FLAG_ACK64 = 0x02;
/** RFC 8684 §3.3: "M = Data Sequence Number (DSN), Subflow Sequence Number (SSN), Data-Level Length, and Checksum (if negotiated) present". */
export const DSS_FLAG_MAP = 0x04;
/** RFC 8684 §3.3: "m = Data sequence number is 8 octets (if not set, DSN is 4 octets)". */
export const DSS_FLAG_DSN64 = 0x08;
/** RFC 8684 §3.3: "F = DATA_FIN present". */
export const DSS_FLAG_DATA_FIN = 0x10;
/** The flags octet: the three bits above F are reserved. */
export const DSS_FLAGS_MASK = 0x1f;
/** Kind, length, subtype and flags. */
export const DSS_LEN_BASE = 4;
export const DSS_LEN_ACK32 = 4;
export const DSS_LEN_ACK64 = 8;
/** DSN (4), subflow sequence number (4), data-level length (2). */
export const DSS_LEN_MAP32 = 10;
/** DSN (8), subflow sequence number (4), data-level length (2). */
export const DSS_LEN_MAP64 = 14;
export const DSS_LEN_CHECKSUM = 2;

// ADD_ADDR (RFC 8684 §3.4.1).
//
//   |Kind|Length|Subtype|(rsv)|E| Address ID |
//   |  Address (IPv4: 4 octets / IPv6: 16 octets)                   |
//   |  Port (2 octets, optional)  |
//   |  Truncated HMAC (8 octets, if E=0)                            |

/**
 * RFC 8684 §3.4.1: the E (echo) flag marks the receiver's echo of an ADD_ADDR, which
 * acknowledges it; an echo carries no HMAC.
 */
export const ADD_ADDR_FLAG_ECHO = 0x01;
/** Kind, length, subtype and flags, Address ID. */
export const ADD_ADDR_LEN_BASE = 4;
export const ADD_ADDR_OFF_ADDRESS_ID = 3;
export const ADD_ADDR_OFF_ADDRESS = 4;
export const ADD_ADDR_IPV4_LEN = 4;
export const ADD_ADDR_IPV6_LEN = 16;
export const ADD_ADDR_PORT_LEN = 2;
/** RFC 8684 §3.4.1: "Truncated HMAC (8 octets, if E=0)". */
export const ADD_ADDR_HMAC_LEN = 8;

// REMOVE_ADDR (RFC 8684 §3.4.2): |Kind|Length = 3 + n|Subtype|(resv)| Address ID | ...

export const REMOVE_ADDR_LEN_BASE = 3;
export const REMOVE_ADDR_OFF_IDS = 3;

// MP_PRIO (RFC 8684 §3.3.8): |Kind|Length|Subtype|(rsv)|B|

/** RFC 8684 §3.3.8: the B flag set asks that the subflow be a backup path; clear, a regular one. */
export const MP_PRIO_FLAG_BACKUP = 0x01;
/** RFC 8684 §3.3.8: MP_PRIO is 3 octets (Linux: TCPOLEN_MPTCP_PRIO). */
export const MP_PRIO_LEN = 3;
/** RFC 6824 (version 0) carried an Address ID in MP_PRIO, Length 4. Read for interop; RFC 8684 dropped it. */
export const MP_PRIO_LEN_WITH_ADDRESS_ID = 4;

// MP_FAIL (RFC 8684 §3.7): |Kind|Length=12|Subtype|(reserved)| Data Sequence Number (8 octets)

export const MP_FAIL_LEN = 12;
export const MP_FAIL_OFF_DSN = 4;

// MP_FASTCLOSE (RFC 8684 §3.5): |Kind|Length|Subtype|(reserved)| Option Receiver's Key (64 bits)

export const MP_FASTCLOSE_LEN = 12;
export const MP_FASTCLOSE_OFF_KEY = 4;

// MP_TCPRST (RFC 8684 §3.6): |Kind|Length|Subtype|U|V|W|T| Reason |

/**
 * RFC 8684 §3.6: the T flag says that the error that caused the reset is transient, so the
 * subflow may be tried again — the rightmost of the four flag bits U V W T (Linux:
 * MPTCP_RST_TRANSIENT = BIT(0); Wireshark: "Transient", tcp.options.mptcp.flag_T.flag, 0x1).
 */
export const MP_TCPRST_FLAG_TRANSIENT = 0x01;
/** RFC 8684 §3.6: the U, V and W flags are unassigned. */
export const MP_TCPRST_FLAGS_UNASSIGNED = 0x0e;
export const MP_TCPRST_LEN = 4;
export const MP_TCPRST_OFF_REASON = 3;

/** RFC 8684 §3.6, "MPTCP MP_TCPRST Reason Codes" (Linux: MPTCP_RST_E*): why we reset a subflow, on the wire. */
export const enum MptcpRstReason {
  /** "Unspecified error" (Linux MPTCP_RST_EUNSPEC). */
  Unspecified = 0x00,
  /** "MPTCP-specific error": "an error has been detected in the processing of MPTCP options" (MPTCP_RST_EMPTCP). */
  MptcpError = 0x01,
  /** "Lack of resources" (MPTCP_RST_ERESOURCE). */
  LackOfResources = 0x02,
  /** "Administratively prohibited" (MPTCP_RST_EPROHIBIT). */
  AdministrativelyProhibited = 0x03,
  /** "Too much outstanding data" (MPTCP_RST_EWQ2BIG). */
  TooMuchOutstandingData = 0x04,
  /** "Unacceptable performance" (MPTCP_RST_EBADPERF). */
  UnacceptablePerformance = 0x05,
  /** "Middlebox interference": a middlebox changed what MPTCP relies on (MPTCP_RST_EMIDDLEBOX). */
  MiddleboxInterference = 0x06,
}

const MASK32 = 0xffffffffn;
const MASK64 = (1n << 64n) - 1n;

// Counters.

/** Why an MPTCP option was dropped. Each is also a counter name of `MptcpOptionCounters`. */
export const MPTCP_OPTION_DROP_REASONS = [
  /** Not kind 30, or a length octet that disagrees with the option's size (a bug upstream: the TCP codec hands whole options over). */
  'mptcpNotMptcp',
  /** A length that no form of the subtype has, or an option too short to hold its subtype octet. */
  'mptcpBadLength',
  /** A length of a form of the subtype that the segment's flags rule out (a 12-byte MP_CAPABLE on a segment without SYN, an MP_TCPRST without RST). */
  'mptcpBadContext',
  /** An MP_CAPABLE of a version other than 1 (or, on the initial SYN, below 1). */
  'mptcpBadVersion',
  /** A subtype that RFC 8684 does not define (or MP_EXPERIMENTAL): ignored. */
  'mptcpUnknownSubtype',
] as const;

export type MptcpOptionDropReason = (typeof MPTCP_OPTION_DROP_REASONS)[number];

export const MPTCP_OPTION_DECISIONS = [
  /** Options parsed into a representation. */
  'mptcpOptionsParsed',
] as const;

export const MPTCP_OPTION_COUNTER_NAMES = [...MPTCP_OPTION_DROP_REASONS, ...MPTCP_OPTION_DECISIONS] as const;

export type MptcpOptionCounterName = (typeof MPTCP_OPTION_COUNTER_NAMES)[number];

/** The counters of the MPTCP option codec. */
export class MptcpOptionCounters extends CounterSet<MptcpOptionCounterName> {
  constructor() {
    super(MPTCP_OPTION_COUNTER_NAMES);
  }
}

/** Where the codec counts: an `MptcpOptionCounters`, or any counter set that has these names. */
export interface MptcpOptionCounterSink {
  increment(name: MptcpOptionCounterName): void;
}

// Representations.

/** The flags octet of MP_CAPABLE (RFC 8684 §3.1). */
export interface MpCapableFlags {
  /** A: "Checksum Required". */
  checksumRequired: boolean;
  /** B: extensibility; MUST be 0. A receiver that does not understand it ignores the MP_CAPABLE (fallback). */
  extensibility: boolean;
  /** C: the sender accepts no more subflows to this source address and port. */
  noMoreSubflowAddr: boolean;
  /** H: HMAC-SHA256, the only crypto algorithm defined. An MP_CAPABLE without it is not one we can use. */
  hmacSha256: boolean;
  /** The unassigned bits D-G as they sit in the octet (mask 0x1e), kept for round trips. Send 0. */
  unassigned?: number;
}

/**
 * MP_CAPABLE (RFC 8684 §3.1). The form follows from the fields present:
 *   SYN (4 bytes):                 neither key;
 *   SYN/ACK (12):                  `senderKey`;
 *   third ACK (20):                `senderKey` and `receiverKey`;
 *   first data (22, or 24):        both keys and `dataLen` (and `checksum`).
 *
 * The codec reads the flags as they are; the handshake decides (RFC 8684 §3.1) that an
 * MP_CAPABLE with B set or H clear is ignored (fallback to TCP).
 */
export interface MpCapable {
  type: 'mp_capable';
  /** 1 (a SYN may offer a higher version; the SYN/ACK answers with the one in use). */
  version: number;
  flags: MpCapableFlags;
  /** "Option Sender's Key (64 bits)": on the SYN/ACK, the third ACK and the first data. */
  senderKey?: bigint;
  /** "Option Receiver's Key (64 bits)": on the third ACK and the first data. */
  receiverKey?: bigint;
  /** "Data-Level Length (16 bits)": the first data's mapping (DSN = IDSN + 1, subflow sequence 1). */
  dataLen?: number;
  /** "Checksum (16 bits, optional)": the DSS checksum of that mapping, when checksums are in use. */
  checksum?: number;
}

/** MP_JOIN on the SYN (RFC 8684 §3.2): 12 bytes. */
export interface MpJoinSyn {
  type: 'mp_join_syn';
  backup: boolean;
  addressId: number;
  /** "Receiver's Token (32 bits)": the token of the connection to join (`keyToToken(receiver's key)`). */
  receiverToken: number;
  /** "Sender's Random Number (32 bits)": R-A. */
  senderNonce: number;
}

/** MP_JOIN on the SYN/ACK (RFC 8684 §3.2): 16 bytes. */
export interface MpJoinSynAck {
  type: 'mp_join_synack';
  backup: boolean;
  addressId: number;
  /** "Sender's Truncated HMAC (64 bits)": the leftmost 64 bits of HMAC(Key-B+Key-A, R-B+R-A). */
  truncatedHmac: bigint;
  /** "Sender's Random Number (32 bits)": R-B. */
  senderNonce: number;
}

/** MP_JOIN on the third ACK (RFC 8684 §3.2): 24 bytes. */
export interface MpJoinAck {
  type: 'mp_join_ack';
  /** "Sender's HMAC (160 bits)": the leftmost 160 bits of HMAC(Key-A+Key-B, R-A+R-B). A copy, 20 bytes. */
  hmac: Buffer;
}

/** The Data Sequence Mapping of a DSS (RFC 8684 §3.3.1). */
export interface DssMapping {
  /** The data sequence number: 64 bits when `dsn8`, else the low 32 bits as sent (to expand). */
  dsn: bigint;
  /** The "m" flag: the DSN is 8 octets. */
  dsn8: boolean;
  /** "Subflow Sequence Number", relative to the subflow's initial sequence number. */
  subflowSeq: number;
  /** "Data-Level Length" (0: an infinite mapping, RFC 8684 §3.7). A DATA_FIN counts one. */
  dataLen: number;
  /** "Checksum": present when checksums were negotiated. */
  checksum?: number;
}

/** DSS (RFC 8684 §3.3): any combination of Data ACK, mapping and DATA_FIN. */
export interface Dss {
  type: 'dss';
  /** The Data ACK: 64 bits when `dataAck8`, else the low 32 bits as sent (to expand). Absent: flag A clear. */
  dataAck?: bigint;
  /** The "a" flag: the Data ACK is 8 octets. */
  dataAck8?: boolean;
  /** The Data Sequence Mapping. Absent: flag M clear. */
  mapping?: DssMapping;
  /** The "F" flag: DATA_FIN. */
  dataFin: boolean;
}

/** ADD_ADDR (RFC 8684 §3.4.1). */
export interface AddAddr {
  type: 'add_addr';
  /** E: an echo, which carries no HMAC. */
  echo: boolean;
  addressId: number;
  /** 4 bytes (IPv4) or 16 (IPv6), network order. A copy on parse. */
  address: Buffer;
  /** Present when the option carries a port. */
  port?: number;
  /** The truncated HMAC (`addAddrHmac`): present exactly when `echo` is false. */
  hmac?: bigint;
}

/** REMOVE_ADDR (RFC 8684 §3.4.2). */
export interface RemoveAddr {
  type: 'remove_addr';
  /** At least one. */
  addressIds: number[];
}

/** MP_PRIO (RFC 8684 §3.3.8). */
export interface MpPrio {
  type: 'mp_prio';
  backup: boolean;
  /** RFC 6824 (v0) only: an Address ID, which makes the option 4 bytes. Linux (v1) accepts only 3 bytes: leave it out. */
  addressId?: number;
}

/** MP_FAIL (RFC 8684 §3.7). */
export interface MpFail {
  type: 'mp_fail';
  /** "Data Sequence Number (8 octets)": the start of the mapping whose checksum failed. */
  dsn: bigint;
}

/** MP_FASTCLOSE (RFC 8684 §3.5). */
export interface MpFastclose {
  type: 'mp_fastclose';
  /** "Option Receiver's Key (64 bits)": the key of the host it is sent to. */
  receiverKey: bigint;
}

/** MP_TCPRST (RFC 8684 §3.6): on a RST, why the subflow is reset. */
export interface MpTcpRst {
  type: 'mp_tcprst';
  /** A MptcpRstReason, or a code RFC 8684 does not assign (received; kept as it came). */
  reason: MptcpRstReason | number;
  /** T: the error is transient; the subflow may be tried again. */
  transient: boolean;
  /** The unassigned bits U, V, W as they sit in the nibble (mask 0x0e), kept for round trips. Send 0. */
  flags: number;
}

export type MptcpOption =
  | MpCapable
  | MpJoinSyn
  | MpJoinSynAck
  | MpJoinAck
  | Dss
  | AddAddr
  | RemoveAddr
  | MpPrio
  | MpFail
  | MpFastclose
  | MpTcpRst;

/** The TCP flags of the segment an option came on (RFC 8684 §3.1: "The contents of the option is determined by the SYN and ACK flags of the packet, along with the option's length field"). */
export interface MptcpParseContext {
  syn: boolean;
  ack: boolean;
  /** When given, an MP_TCPRST on a segment without RST is dropped (`mptcpBadContext`), as Linux drops it. */
  rst?: boolean;
}

// The view.

/**
 * A view over one raw MPTCP option (kind and length octets included), checked once for its
 * kind, its length octet and room for the subtype octet; then the getters cannot run past the
 * end, provided each subtype's parser checks its own length first.
 */
export class MptcpOptionView {
  private constructor(readonly buffer: Buffer) {}

  /** The view, or why the bytes are not an MPTCP option. Never throws. */
  static check(raw: Buffer): MptcpOptionView | MptcpOptionDropReason {
    if (raw.length < 2 || raw[MPTCP_OFF_KIND] !== TCP_OPT_MPTCP || raw[MPTCP_OFF_LENGTH] !== raw.length) return 'mptcpNotMptcp';
    if (raw.length < MPTCP_OPTLEN_MIN) return 'mptcpBadLength';
    return new MptcpOptionView(raw);
  }

  get length(): number {
    return this.buffer[MPTCP_OFF_LENGTH];
  }

  /** The high nibble of the third octet. */
  get subtype(): number {
    return this.buffer[MPTCP_OFF_SUBTYPE] >>> 4;
  }

  /** The low nibble of the third octet: MP_CAPABLE's version, the flags of MP_JOIN, ADD_ADDR, MP_PRIO, MP_TCPRST. */
  get nibble(): number {
    return this.buffer[MPTCP_OFF_SUBTYPE] & 0x0f;
  }

  u8(offset: number): number {
    return this.buffer[offset];
  }

  u16(offset: number): number {
    return readU16(this.buffer, offset);
  }

  u32(offset: number): number {
    return readU32(this.buffer, offset);
  }

  u64(offset: number): bigint {
    return (BigInt(readU32(this.buffer, offset)) << 32n) | BigInt(readU32(this.buffer, offset + 4));
  }
}

// Parsing.

/**
 * Parses one MPTCP option (kind 30 and length octets included, as `TcpOptions.mptcp` holds
 * it) on a segment with the flags of `ctx`. Returns the representation, or `null` after
 * counting why not. Never throws.
 */
export function parseMptcpOption(raw: Buffer, ctx: MptcpParseContext, counters?: MptcpOptionCounterSink): MptcpOption | null {
  const view = MptcpOptionView.check(raw);
  if (typeof view === 'string') {
    counters?.increment(view);
    return null;
  }
  const out = parseView(view, ctx);
  if (typeof out === 'string') {
    counters?.increment(out);
    return null;
  }
  counters?.increment('mptcpOptionsParsed');
  return out;
}

function parseView(v: MptcpOptionView, ctx: MptcpParseContext): MptcpOption | MptcpOptionDropReason {
  switch (v.subtype) {
    case MPTCP_SUB_CAPABLE:
      return parseMpCapable(v, ctx);
    case MPTCP_SUB_JOIN:
      return parseMpJoin(v, ctx);
    case MPTCP_SUB_DSS:
      return parseDss(v);
    case MPTCP_SUB_ADD_ADDR:
      return parseAddAddr(v);
    case MPTCP_SUB_REMOVE_ADDR:
      return parseRemoveAddr(v);
    case MPTCP_SUB_PRIO:
      return parseMpPrio(v);
    case MPTCP_SUB_FAIL:
      // RFC 8684 §3.7: MP_FAIL carries "Data Sequence Number (8 octets)" after 12 reserved bits.
      if (v.length !== MP_FAIL_LEN) return 'mptcpBadLength';
      return { type: 'mp_fail', dsn: v.u64(MP_FAIL_OFF_DSN) };
    case MPTCP_SUB_FASTCLOSE:
      // RFC 8684 §3.5: MP_FASTCLOSE carries "Option Receiver's Key (64 bits)" after 12 reserved bits.
      if (v.length !== MP_FASTCLOSE_LEN) return 'mptcpBadLength';
      return { type: 'mp_fastclose', receiverKey: v.u64(MP_FASTCLOSE_OFF_KEY) };
    case MPTCP_SUB_TCPRST:
      return parseMpTcpRst(v, ctx);
    default:
      // Subtypes 0x9-0xe are unassigned and 0xf is "MP_EXPERIMENTAL ... Reserved for Private
      // Use" (RFC 8684 §8): not ours to act on, so the option is ignored.
      return 'mptcpUnknownSubtype';
  }
}

/** MP_CAPABLE lengths allowed on a segment with these flags. */
function mpCapableLengthFits(len: number, ctx: MptcpParseContext): boolean {
  if (ctx.syn) return len === (ctx.ack ? MPC_LEN_SYNACK : MPC_LEN_SYN);
  return len === MPC_LEN_ACK || len === MPC_LEN_ACK_DATA || len === MPC_LEN_ACK_DATA_CSUM;
}

function isMpCapableLength(len: number): boolean {
  return len === MPC_LEN_SYN || len === MPC_LEN_SYNACK || len === MPC_LEN_ACK || len === MPC_LEN_ACK_DATA || len === MPC_LEN_ACK_DATA_CSUM;
}

function parseMpCapable(v: MptcpOptionView, ctx: MptcpParseContext): MpCapable | MptcpOptionDropReason {
  const len = v.length;
  // A subtype octet alone: no flags octet to read.
  if (len < MPC_LEN_SYN) return 'mptcpBadLength';
  const version = v.nibble;
  // RFC 8684 §3.1: "If a host supports multiple versions of MPTCP, the sender of the MP_CAPABLE
  // option SHOULD signal the highest version number it supports. In return, in its MP_CAPABLE
  // option, the receiver will signal the version number it wishes to use, which MUST be equal
  // to or lower than the version number indicated in the initial MP_CAPABLE." So an initial
  // SYN may offer more than 1 (we answer with 1); every later MP_CAPABLE says 1. Version 0
  // (RFC 6824) has other layouts: not ours.
  if (ctx.syn && !ctx.ack ? version < MPTCP_VERSION : version !== MPTCP_VERSION) return 'mptcpBadVersion';
  // RFC 8684 §3.1: "The contents of the option is determined by the SYN and ACK flags of the
  // packet, along with the option's length field."
  if (!mpCapableLengthFits(len, ctx)) return isMpCapableLength(len) ? 'mptcpBadContext' : 'mptcpBadLength';
  const f = v.u8(MPTCP_OFF_BYTE3);
  const opt: MpCapable = {
    type: 'mp_capable',
    version,
    flags: {
      checksumRequired: (f & MPC_FLAG_CHECKSUM_REQUIRED) !== 0,
      extensibility: (f & MPC_FLAG_EXTENSIBILITY) !== 0,
      noMoreSubflowAddr: (f & MPC_FLAG_NO_MORE_SUBFLOW_ADDR) !== 0,
      hmacSha256: (f & MPC_FLAG_HMAC_SHA256) !== 0,
      unassigned: f & MPC_FLAGS_UNASSIGNED,
    },
  };
  // RFC 8684 §3.1: "Option Sender's Key (64 bits) (if option Length > 4)".
  if (len >= MPC_LEN_SYNACK) opt.senderKey = v.u64(MPC_OFF_SENDER_KEY);
  // "Option Receiver's Key (64 bits) (if option Length > 12)".
  if (len >= MPC_LEN_ACK) opt.receiverKey = v.u64(MPC_OFF_RECEIVER_KEY);
  // RFC 8684 §3.1: the first packet with data may carry MP_CAPABLE with "Data-Level Length
  // (16 bits)" and "Checksum (16 bits, optional)"; "the data parameters in an MP_CAPABLE are
  // semantically equivalent to those in a DSS option and can be used interchangeably".
  if (len >= MPC_LEN_ACK_DATA) opt.dataLen = v.u16(MPC_OFF_DATA_LEN);
  if (len === MPC_LEN_ACK_DATA_CSUM) opt.checksum = v.u16(MPC_OFF_CHECKSUM);
  return opt;
}

function parseMpJoin(v: MptcpOptionView, ctx: MptcpParseContext): MpJoinSyn | MpJoinSynAck | MpJoinAck | MptcpOptionDropReason {
  const len = v.length;
  // RFC 8684 §3.2: the MP_JOIN on the SYN is 12 octets, on the SYN/ACK
  // 16, on the third ACK 24; which one a segment carries follows from its flags.
  const expected = ctx.syn ? (ctx.ack ? MPJ_LEN_SYNACK : MPJ_LEN_SYN) : MPJ_LEN_ACK;
  if (len !== expected) {
    return len === MPJ_LEN_SYN || len === MPJ_LEN_SYNACK || len === MPJ_LEN_ACK ? 'mptcpBadContext' : 'mptcpBadLength';
  }
  if (len === MPJ_LEN_ACK) {
    // "Sender's HMAC (160 bits)". Copied: the representation outlives the packet buffer.
    return { type: 'mp_join_ack', hmac: Buffer.from(v.buffer.subarray(MPJ_OFF_HMAC, MPJ_OFF_HMAC + MPJ_HMAC_LEN)) };
  }
  const backup = (v.nibble & MPJ_FLAG_BACKUP) !== 0;
  const addressId = v.u8(MPJ_OFF_ADDRESS_ID);
  if (len === MPJ_LEN_SYN) {
    return { type: 'mp_join_syn', backup, addressId, receiverToken: v.u32(MPJ_OFF_TOKEN), senderNonce: v.u32(MPJ_OFF_SYN_NONCE) };
  }
  return { type: 'mp_join_synack', backup, addressId, truncatedHmac: v.u64(MPJ_OFF_TRUNCATED_HMAC), senderNonce: v.u32(MPJ_OFF_SYNACK_NONCE) };
}

/** The DSS length for these flags, without the optional checksum. */
function dssLenForFlags(flags: number): number {
  let len = DSS_LEN_BASE;
  if ((flags & DSS_FLAG_DATA_ACK) !== 0) len += (flags & DSS_FLAG_ACK64) !== 0 ? DSS_LEN_ACK64 : DSS_LEN_ACK32;
  if ((flags & DSS_FLAG_MAP) !== 0) len += (flags & DSS_FLAG_DSN64) !== 0 ? DSS_LEN_MAP64 : DSS_LEN_MAP32;
  return len;
}

function parseDss(v: MptcpOptionView): Dss | MptcpOptionDropReason {
  const len = v.length;
  if (len < DSS_LEN_BASE) return 'mptcpBadLength';
  const flags = v.u8(MPTCP_OFF_BYTE3) & DSS_FLAGS_MASK;
  const hasMap = (flags & DSS_FLAG_MAP) !== 0;
  const expected = dssLenForFlags(flags);
  // RFC 8684 §3.3.1: the checksum follows the mapping "if negotiated"; its presence shows in
  // the length (as Linux reads it: the handshake, not the codec, decides whether it must be there).
  const withChecksum = hasMap && len === expected + DSS_LEN_CHECKSUM;
  if (len !== expected && !withChecksum) return 'mptcpBadLength';

  const opt: Dss = { type: 'dss', dataFin: (flags & DSS_FLAG_DATA_FIN) !== 0 };
  let p = DSS_LEN_BASE;
  // RFC 8684 §3.3: "A = Data ACK present", "a = Data ACK is 8 octets (if not set, Data ACK is 4 octets)".
  if ((flags & DSS_FLAG_DATA_ACK) !== 0) {
    if ((flags & DSS_FLAG_ACK64) !== 0) {
      opt.dataAck = v.u64(p);
      opt.dataAck8 = true;
      p += DSS_LEN_ACK64;
    } else {
      opt.dataAck = BigInt(v.u32(p));
      opt.dataAck8 = false;
      p += DSS_LEN_ACK32;
    }
  }
  // RFC 8684 §3.3: "M = Data Sequence Number (DSN), Subflow Sequence Number (SSN), Data-Level
  // Length, and Checksum (if negotiated) present", "m = Data sequence number is 8 octets (if
  // not set, DSN is 4 octets)".
  if (hasMap) {
    const dsn8 = (flags & DSS_FLAG_DSN64) !== 0;
    const dsn = dsn8 ? v.u64(p) : BigInt(v.u32(p));
    p += dsn8 ? 8 : 4;
    const mapping: DssMapping = { dsn, dsn8, subflowSeq: v.u32(p), dataLen: v.u16(p + 4) };
    p += 6;
    if (withChecksum) mapping.checksum = v.u16(p);
    opt.mapping = mapping;
  }
  return opt;
}

function parseAddAddr(v: MptcpOptionView): AddAddr | MptcpOptionDropReason {
  const len = v.length;
  const echo = (v.nibble & ADD_ADDR_FLAG_ECHO) !== 0;
  // RFC 8684 §3.4.1: the address family and the presence of the port follow from the length;
  // the HMAC is there unless the option is an echo ("Truncated HMAC (8 octets, if E=0)").
  let rest = len - ADD_ADDR_LEN_BASE - (echo ? 0 : ADD_ADDR_HMAC_LEN);
  let hasPort = false;
  if (rest === ADD_ADDR_IPV4_LEN + ADD_ADDR_PORT_LEN || rest === ADD_ADDR_IPV6_LEN + ADD_ADDR_PORT_LEN) {
    hasPort = true;
    rest -= ADD_ADDR_PORT_LEN;
  }
  if (rest !== ADD_ADDR_IPV4_LEN && rest !== ADD_ADDR_IPV6_LEN) return 'mptcpBadLength';
  const addrEnd = ADD_ADDR_OFF_ADDRESS + rest;
  const opt: AddAddr = {
    type: 'add_addr',
    echo,
    addressId: v.u8(ADD_ADDR_OFF_ADDRESS_ID),
    address: internAddress(v.buffer.subarray(ADD_ADDR_OFF_ADDRESS, addrEnd)),
  };
  let p = addrEnd;
  if (hasPort) {
    opt.port = v.u16(p);
    p += ADD_ADDR_PORT_LEN;
  }
  if (!echo) opt.hmac = v.u64(p);
  return opt;
}

function parseRemoveAddr(v: MptcpOptionView): RemoveAddr | MptcpOptionDropReason {
  const len = v.length;
  // RFC 8684 §3.4.2: "Length = 3 + n", a list of n Address IDs, at least one.
  if (len < REMOVE_ADDR_LEN_BASE + 1) return 'mptcpBadLength';
  const addressIds: number[] = [];
  for (let i = REMOVE_ADDR_OFF_IDS; i < len; i++) addressIds.push(v.u8(i));
  return { type: 'remove_addr', addressIds };
}

function parseMpPrio(v: MptcpOptionView): MpPrio | MptcpOptionDropReason {
  const len = v.length;
  if (len !== MP_PRIO_LEN && len !== MP_PRIO_LEN_WITH_ADDRESS_ID) return 'mptcpBadLength';
  // RFC 8684 §3.3.8: the B flag is the last bit of the subtype octet.
  const opt: MpPrio = { type: 'mp_prio', backup: (v.nibble & MP_PRIO_FLAG_BACKUP) !== 0 };
  if (len === MP_PRIO_LEN_WITH_ADDRESS_ID) opt.addressId = v.u8(MPTCP_OFF_BYTE3);
  return opt;
}

function parseMpTcpRst(v: MptcpOptionView, ctx: MptcpParseContext): MpTcpRst | MptcpOptionDropReason {
  if (v.length !== MP_TCPRST_LEN) return 'mptcpBadLength';
  // RFC 8684 §3.6: MP_TCPRST rides on the TCP RST that resets the subflow; Linux reads it only on a RST.
  if (ctx.rst === false) return 'mptcpBadContext';
  const nibble = v.nibble;
  return {
    type: 'mp_tcprst',
    reason: v.u8(MP_TCPRST_OFF_REASON),
    transient: (nibble & MP_TCPRST_FLAG_TRANSIENT) !== 0,
    flags: nibble & MP_TCPRST_FLAGS_UNASSIGNED,
  };
}

// Sizing.

function addAddrLen(opt: AddAddr): number {
  return ADD_ADDR_LEN_BASE + opt.address.length + (opt.port !== undefined ? ADD_ADDR_PORT_LEN : 0) + (opt.echo ? 0 : ADD_ADDR_HMAC_LEN);
}

function mpCapableLen(opt: MpCapable): number {
  if (opt.senderKey === undefined) return MPC_LEN_SYN;
  if (opt.receiverKey === undefined) return MPC_LEN_SYNACK;
  if (opt.dataLen === undefined) return MPC_LEN_ACK;
  return opt.checksum === undefined ? MPC_LEN_ACK_DATA : MPC_LEN_ACK_DATA_CSUM;
}

function dssLen(opt: Dss): number {
  let len = DSS_LEN_BASE;
  if (opt.dataAck !== undefined) len += opt.dataAck8 === true ? DSS_LEN_ACK64 : DSS_LEN_ACK32;
  const m = opt.mapping;
  if (m !== undefined) len += (m.dsn8 ? DSS_LEN_MAP64 : DSS_LEN_MAP32) + (m.checksum !== undefined ? DSS_LEN_CHECKSUM : 0);
  return len;
}

/**
 * The option's length octet: the bytes `emitMptcpOption` writes, kind and length included,
 * without the NOPs that the TCP emitter adds after it.
 */
export function mptcpOptionLen(opt: MptcpOption): number {
  switch (opt.type) {
    case 'mp_capable':
      return mpCapableLen(opt);
    case 'mp_join_syn':
      return MPJ_LEN_SYN;
    case 'mp_join_synack':
      return MPJ_LEN_SYNACK;
    case 'mp_join_ack':
      return MPJ_LEN_ACK;
    case 'dss':
      return dssLen(opt);
    case 'add_addr':
      return addAddrLen(opt);
    case 'remove_addr':
      return REMOVE_ADDR_LEN_BASE + opt.addressIds.length;
    case 'mp_prio':
      return opt.addressId === undefined ? MP_PRIO_LEN : MP_PRIO_LEN_WITH_ADDRESS_ID;
    case 'mp_fail':
      return MP_FAIL_LEN;
    case 'mp_fastclose':
      return MP_FASTCLOSE_LEN;
    case 'mp_tcprst':
      return MP_TCPRST_LEN;
  }
}

// Emitting.

function writeU64(buf: Buffer, offset: number, v: bigint): void {
  const x = v & MASK64;
  writeU32(buf, offset, Number(x >> 32n));
  writeU32(buf, offset + 4, Number(x & MASK32));
}

/** Kind, length, and the subtype octet (subtype << 4 | nibble). */
function writeHeader(buf: Buffer, o: number, len: number, subtype: number, nibble: number): void {
  buf[o + MPTCP_OFF_KIND] = TCP_OPT_MPTCP;
  buf[o + MPTCP_OFF_LENGTH] = len;
  buf[o + MPTCP_OFF_SUBTYPE] = (subtype << 4) | (nibble & 0x0f);
}

function mpCapableFlagsOctet(f: MpCapableFlags): number {
  return (
    (f.checksumRequired ? MPC_FLAG_CHECKSUM_REQUIRED : 0) |
    (f.extensibility ? MPC_FLAG_EXTENSIBILITY : 0) |
    (f.noMoreSubflowAddr ? MPC_FLAG_NO_MORE_SUBFLOW_ADDR : 0) |
    ((f.unassigned ?? 0) & MPC_FLAGS_UNASSIGNED) |
    (f.hmacSha256 ? MPC_FLAG_HMAC_SHA256 : 0)
  );
}

/** Throws a RangeError for a representation that no wire form has (a programming error). */
function validate(opt: MptcpOption): void {
  switch (opt.type) {
    case 'mp_capable':
      if (opt.senderKey === undefined && (opt.receiverKey !== undefined || opt.dataLen !== undefined || opt.checksum !== undefined)) {
        throw new RangeError('MP_CAPABLE: a receiver key, data-level length or checksum needs the sender key');
      }
      if (opt.receiverKey === undefined && (opt.dataLen !== undefined || opt.checksum !== undefined)) {
        throw new RangeError('MP_CAPABLE: a data-level length or checksum needs both keys');
      }
      if (opt.dataLen === undefined && opt.checksum !== undefined) throw new RangeError('MP_CAPABLE: a checksum needs a data-level length');
      break;
    case 'mp_join_ack':
      if (opt.hmac.length < MPJ_HMAC_LEN) throw new RangeError(`MP_JOIN ACK: the HMAC needs ${MPJ_HMAC_LEN} bytes, got ${opt.hmac.length}`);
      break;
    case 'dss':
      if (opt.dataAck8 === true && opt.dataAck === undefined) throw new RangeError('DSS: dataAck8 without a Data ACK');
      break;
    case 'add_addr':
      if (opt.address.length !== ADD_ADDR_IPV4_LEN && opt.address.length !== ADD_ADDR_IPV6_LEN) {
        throw new RangeError(`ADD_ADDR: an address is 4 or 16 bytes, got ${opt.address.length}`);
      }
      // RFC 8684 §3.4.1: "Truncated HMAC (8 octets, if E=0)" — and none on an echo.
      if (opt.echo === (opt.hmac !== undefined)) throw new RangeError('ADD_ADDR: an HMAC is carried exactly when the option is not an echo');
      break;
    case 'remove_addr':
      if (opt.addressIds.length < 1 || REMOVE_ADDR_LEN_BASE + opt.addressIds.length > MPTCP_OPTLEN_MAX) {
        throw new RangeError(`REMOVE_ADDR: 1 to ${MPTCP_OPTLEN_MAX - REMOVE_ADDR_LEN_BASE} Address IDs, got ${opt.addressIds.length}`);
      }
      break;
    default:
      break;
  }
}

/**
 * Writes `opt` at `buf[offset..]` — kind 30, its length, the subtype octet and the rest — and
 * returns the bytes written (`mptcpOptionLen(opt)`). Values are written as given, masked to
 * their field widths. Throws a RangeError only on a programming error: a representation that
 * no wire form has (see `validate`), or a buffer too small.
 */
export function emitMptcpOption(opt: MptcpOption, buf: Buffer, offset: number): number {
  validate(opt);
  const len = mptcpOptionLen(opt);
  if (offset < 0 || offset + len > buf.length) throw new RangeError(`an MPTCP option of ${len} bytes does not fit at offset ${offset} of ${buf.length}`);
  const o = offset;
  switch (opt.type) {
    case 'mp_capable': {
      writeHeader(buf, o, len, MPTCP_SUB_CAPABLE, opt.version);
      buf[o + MPTCP_OFF_BYTE3] = mpCapableFlagsOctet(opt.flags);
      if (opt.senderKey !== undefined) writeU64(buf, o + MPC_OFF_SENDER_KEY, opt.senderKey);
      if (opt.receiverKey !== undefined) writeU64(buf, o + MPC_OFF_RECEIVER_KEY, opt.receiverKey);
      if (opt.dataLen !== undefined) writeU16(buf, o + MPC_OFF_DATA_LEN, opt.dataLen);
      if (opt.checksum !== undefined) writeU16(buf, o + MPC_OFF_CHECKSUM, opt.checksum);
      break;
    }
    case 'mp_join_syn':
      writeHeader(buf, o, len, MPTCP_SUB_JOIN, opt.backup ? MPJ_FLAG_BACKUP : 0);
      buf[o + MPJ_OFF_ADDRESS_ID] = opt.addressId & 0xff;
      writeU32(buf, o + MPJ_OFF_TOKEN, opt.receiverToken);
      writeU32(buf, o + MPJ_OFF_SYN_NONCE, opt.senderNonce);
      break;
    case 'mp_join_synack':
      writeHeader(buf, o, len, MPTCP_SUB_JOIN, opt.backup ? MPJ_FLAG_BACKUP : 0);
      buf[o + MPJ_OFF_ADDRESS_ID] = opt.addressId & 0xff;
      writeU64(buf, o + MPJ_OFF_TRUNCATED_HMAC, opt.truncatedHmac);
      writeU32(buf, o + MPJ_OFF_SYNACK_NONCE, opt.senderNonce);
      break;
    case 'mp_join_ack':
      // RFC 8684 §3.2: the 12 bits after the subtype are reserved (zero).
      writeHeader(buf, o, len, MPTCP_SUB_JOIN, 0);
      buf[o + MPTCP_OFF_BYTE3] = 0;
      buf.set(opt.hmac.subarray(0, MPJ_HMAC_LEN), o + MPJ_OFF_HMAC);
      break;
    case 'dss':
      emitDss(opt, buf, o, len);
      break;
    case 'add_addr': {
      writeHeader(buf, o, len, MPTCP_SUB_ADD_ADDR, opt.echo ? ADD_ADDR_FLAG_ECHO : 0);
      buf[o + ADD_ADDR_OFF_ADDRESS_ID] = opt.addressId & 0xff;
      buf.set(opt.address, o + ADD_ADDR_OFF_ADDRESS);
      let p = o + ADD_ADDR_OFF_ADDRESS + opt.address.length;
      if (opt.port !== undefined) {
        writeU16(buf, p, opt.port);
        p += ADD_ADDR_PORT_LEN;
      }
      if (opt.hmac !== undefined) writeU64(buf, p, opt.hmac);
      break;
    }
    case 'remove_addr':
      writeHeader(buf, o, len, MPTCP_SUB_REMOVE_ADDR, 0);
      for (let i = 0; i < opt.addressIds.length; i++) buf[o + REMOVE_ADDR_OFF_IDS + i] = opt.addressIds[i] & 0xff;
      break;
    case 'mp_prio':
      writeHeader(buf, o, len, MPTCP_SUB_PRIO, opt.backup ? MP_PRIO_FLAG_BACKUP : 0);
      if (opt.addressId !== undefined) buf[o + MPTCP_OFF_BYTE3] = opt.addressId & 0xff;
      break;
    case 'mp_fail':
      writeHeader(buf, o, len, MPTCP_SUB_FAIL, 0);
      buf[o + MPTCP_OFF_BYTE3] = 0;
      writeU64(buf, o + MP_FAIL_OFF_DSN, opt.dsn);
      break;
    case 'mp_fastclose':
      writeHeader(buf, o, len, MPTCP_SUB_FASTCLOSE, 0);
      buf[o + MPTCP_OFF_BYTE3] = 0;
      writeU64(buf, o + MP_FASTCLOSE_OFF_KEY, opt.receiverKey);
      break;
    case 'mp_tcprst':
      writeHeader(buf, o, len, MPTCP_SUB_TCPRST, (opt.transient ? MP_TCPRST_FLAG_TRANSIENT : 0) | (opt.flags & MP_TCPRST_FLAGS_UNASSIGNED));
      buf[o + MP_TCPRST_OFF_REASON] = opt.reason & 0xff;
      break;
  }
  return len;
}

function emitDss(opt: Dss, buf: Buffer, o: number, len: number): void {
  let flags = opt.dataFin ? DSS_FLAG_DATA_FIN : 0;
  writeHeader(buf, o, len, MPTCP_SUB_DSS, 0);
  let p = o + DSS_LEN_BASE;
  if (opt.dataAck !== undefined) {
    flags |= DSS_FLAG_DATA_ACK;
    if (opt.dataAck8 === true) {
      flags |= DSS_FLAG_ACK64;
      writeU64(buf, p, opt.dataAck);
      p += DSS_LEN_ACK64;
    } else {
      writeU32(buf, p, Number(opt.dataAck & MASK32));
      p += DSS_LEN_ACK32;
    }
  }
  const m = opt.mapping;
  if (m !== undefined) {
    flags |= DSS_FLAG_MAP;
    if (m.dsn8) {
      flags |= DSS_FLAG_DSN64;
      writeU64(buf, p, m.dsn);
      p += 8;
    } else {
      writeU32(buf, p, Number(m.dsn & MASK32));
      p += 4;
    }
    writeU32(buf, p, m.subflowSeq);
    writeU16(buf, p + 4, m.dataLen);
    p += 6;
    if (m.checksum !== undefined) writeU16(buf, p, m.checksum);
  }
  buf[o + MPTCP_OFF_BYTE3] = flags;
}

/**
 * A fresh Buffer holding `opt` as one whole option, for the TCP layer's `TcpOptions.mptcp`
 * list (whose emitter pads it with NOPs). Throws as `emitMptcpOption` does.
 */
export function emitMptcpOptionBuffer(opt: MptcpOption): Buffer {
  const buf = Buffer.alloc(mptcpOptionLen(opt));
  emitMptcpOption(opt, buf, 0);
  return buf;
}

/** The representation's `parse`, `bufferLen` and `emit`, in the manner of `TcpRepr` (CONVENTIONS.md 1). */
export const MptcpOptionRepr = {
  parse: parseMptcpOption,
  bufferLen: mptcpOptionLen,
  emit: emitMptcpOption,
};

const DROP_REASON_SET: ReadonlySet<string> = new Set(MPTCP_OPTION_DROP_REASONS);

/** True when `x` (e.g. the result of `MptcpOptionView.check`) is a drop reason rather than a view. */
export function isMptcpOptionDropReason(x: unknown): x is MptcpOptionDropReason {
  return typeof x === 'string' && DROP_REASON_SET.has(x);
}
