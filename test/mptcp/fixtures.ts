// MPTCP options captured from the Linux kernel (6.18, Debian 12 userland, this machine), as hex.
//
// `*_OPT` constants are one MPTCP option, kind (0x1e) and length octets included, exactly as
// `TcpOptions.mptcp` holds it; `*_PKT` constants are whole IP packets (the 14-byte Ethernet
// header of the capture removed), for the tests that read payloads or go through the TCP codec.
// The TCP checksums of the packets are not valid: veth leaves them to the "device"
// (CHECKSUM_PARTIAL), so parse them with the checksum skipped.
//
// How they were captured: test/mptcp/capture-kernel.sh (as root) — two throwaway namespaces,
// mptmp-c (client) and mptmp-s (server), joined by two veth pairs:
//
//   link 1: mptmp-c1 10.91.1.1/24, fd00:91:1::1/64  <->  mptmp-s1 10.91.1.2/24, fd00:91:1::2/64
//   link 2: mptmp-c2 10.91.2.1/24, fd00:91:2::1/64  <->  mptmp-s2 10.91.2.2/24, fd00:91:2::2/64
//   both:   sysctl net.mptcp.enabled=1; ip mptcp limits set subflows 2 add_addr_accepted 2
//   server: ip mptcp endpoint add 10.91.2.2 dev mptmp-s2 signal
//   tcpdump -i mptmp-s1 -w link1.pcap tcp; tcpdump -i mptmp-s2 -w link2.pcap tcp (in mptmp-s)
//
// and six runs, each with its own capture:
//   1. iperf3     `mptcpize run iperf3 -s -1` / `mptcpize run iperf3 -c 10.91.1.2 -n 200K`: two
//                 MPTCP connections (iperf3's control connection, then its data connection),
//                 each joined on link 2 after the server's ADD_ADDR of 10.91.2.2.
//   2. csum       net.mptcp.checksum_enabled=1 on both ends; python3 with IPPROTO_MPTCP (262):
//                 the client sends "hello, kernel MPTCP with checksums\n", then 4096 bytes
//                 (bytes(range(256)) * 16), shuts down; the server answers "got 4131\n".
//   3. prio       a long connection; on the server `ip mptcp endpoint change id 1 backup`
//                 (MP_PRIO on the subflow of link 2), then `ip mptcp endpoint delete id 1`
//                 (REMOVE_ADDR on link 1).
//   4. fastclose  the server sends 1200 bytes, the client closes without reading them: the
//                 kernel resets both subflows with MP_FASTCLOSE + MP_TCPRST.
//   5. mpcdata    no address signalled, so the client's first data goes with MP_CAPABLE
//                 ("first data\n", 11 bytes), checksums off, then on.
//   6. addaddr6   over IPv6, TCP timestamps off (the 30-byte option does not fit beside them):
//                 the server signals fd00:91:2::2 port 5299; the client has an endpoint
//                 `fd00:91:2::1 dev mptmp-c2 backup` and joins it as a backup subflow.
// The option bytes were cut out of the captures with tshark (`-T fields -e tcp.options`).

/** A fresh Buffer from hex (tests may mutate it; the fixtures stay intact). */
export { bytes } from '../helpers/segments.js';

// Run 1, iperf3's control connection: 10.91.1.1.58162 > 10.91.1.2.5201.
// Keys: client (Key-A) 0x2b39cb6291922135, server (Key-B) 0x01cb28f001b21b21.

/** MP_CAPABLE on the SYN: v1, flags H (HMAC-SHA256). 4 bytes. */
export const MPC_SYN_OPT = '1e040101';
/** MP_CAPABLE on the SYN/ACK: v1, H, the server's key 0x01cb28f001b21b21. 12 bytes. */
export const MPC_SYNACK_OPT = '1e0c010101cb28f001b21b21';
/** MP_CAPABLE on the third ACK: v1, H, sender's key (client) 0x2b39cb6291922135, receiver's key (server). 20 bytes. */
export const MPC_ACK_OPT = '1e1401012b39cb629192213501cb28f001b21b21';
export const CTRL_CLIENT_KEY = 0x2b39cb6291922135n;
export const CTRL_SERVER_KEY = 0x01cb28f001b21b21n;

/** The SYN: [S], seq 555159886, options [mss 1460,sackOK,TS val 616955512 ecr 0,nop,wscale 10, mptcp capable v1]. */
export const MPC_SYN_PKT =
  '45000040fa454000400629ba0a5b01010a5b0102e33214512117114e00000000b002faf016eb0000020405b40402080a24c5fe78000000000103030a1e040101';
/** The SYN/ACK, with MP_CAPABLE (server key). */
export const MPC_SYNACK_PKT =
  '4500004800004000400623f80a5b01020a5b01011451e3329349989f2117114fd012fe8816f30000020405b40402080ab2c9082a24c5fe780103030a1e0c010101cb28f001b21b21';
/** The third ACK, with MP_CAPABLE (both keys). */
export const MPC_ACK_PKT =
  '45000048fa464000400629b10a5b01010a5b0102e33214512117114f934998a0d010003f16f300000101080a24c5fe78b2c9082a1e1401012b39cb629192213501cb28f001b21b21';

/**
 * ADD_ADDR from the server on link 1 (a pure ACK right after the third ACK): E=0, Address ID
 * 1, 10.91.2.2, no port, truncated HMAC 0x9caaf4e8b105c5ce. 16 bytes.
 */
export const ADD_ADDR_OPT = '1e1030010a5b02029caaf4e8b105c5ce';
export const ADD_ADDR_HMAC = 0x9caaf4e8b105c5cen;
/** The packet that carries it: ADD_ADDR alone (Linux drops the DSS of a pure ACK for it). */
export const ADD_ADDR_PKT =
  '45000044d20d4000400651ee0a5b01020a5b01011451e332934998a02117114fc010003f16ef00000101080ab2c9082a24c5fe781e1030010a5b02029caaf4e8b105c5ce';
/** The client's echo: E=1, Address ID 1, 10.91.2.2, no HMAC. 8 bytes. */
export const ADD_ADDR_ECHO_OPT = '1e0831010a5b0202';

/**
 * The client's first data (37 bytes, iperf3's cookie): DSS flags 0x0d (m M A): Data ACK 32 bits
 * 0xba207f31, DSN 64 bits 0x01baa1e90a5b2c34 (= IDSN(client key) + 1), subflow sequence 1,
 * data-level length 37, no checksum. 22 bytes, padded with two NOPs.
 */
export const DSS_FIRST_DATA_OPT = '1e16200dba207f3101baa1e90a5b2c34000000010025';
export const DSS_FIRST_DATA_PKT =
  '45000071fa484000400629860a5b01010a5b0102e33214512117114f934998a0e018003f171c00000101080a24c5fe78b2c9082a1e16200dba207f3101baa1e90a5b2c340000000100250101626d646575746c63776437357a63716f327878717265706377637977743768343567643700';
/** The server's ACK of it: DSS flags 0x03 (a A), Data ACK 64 bits 0x01baa1e90a5b2c59 (= DSN + 37). 12 bytes. */
export const DSS_DATA_ACK64_OPT = '1e0c200301baa1e90a5b2c59';
/**
 * The server's first data (1 byte): DSS flags 0x0f (m M a A): Data ACK 64 bits
 * 0x01baa1e90a5b2c59, DSN 0x93506d79ba207f31 (= IDSN(server key) + 1), subflow sequence 1,
 * length 1. 26 bytes.
 */
export const DSS_SERVER_FIRST_DATA_OPT = '1e1a200f01baa1e90a5b2c5993506d79ba207f31000000010001';

// Run 1, link 2: the MP_JOIN of the control connection, 10.91.2.1.41567 > 10.91.2.2.5201.

/** MP_JOIN on the SYN: B=0, Address ID 1, receiver's token 0x1880071a (= token(server key)), nonce R-A 0x6adea0d3. 12 bytes. */
export const JOIN_SYN_OPT = '1e0c10011880071a6adea0d3';
/** MP_JOIN on the SYN/ACK: B=0, Address ID 1, truncated HMAC 0x3b94d6ebb4bcd8bf, nonce R-B 0xbb93649f. 16 bytes. */
export const JOIN_SYNACK_OPT = '1e1010013b94d6ebb4bcd8bfbb93649f';
/** MP_JOIN on the third ACK: the client's HMAC, 160 bits. 24 bytes. */
export const JOIN_ACK_OPT = '1e1810009454569d4a848d618cae1f1edd4e42d4ee3356d3';
export const JOIN_TOKEN = 0x1880071a;
export const JOIN_NONCE_A = 0x6adea0d3;
export const JOIN_NONCE_B = 0xbb93649f;
export const JOIN_SYNACK_HMAC = 0x3b94d6ebb4bcd8bfn;
export const JOIN_ACK_HMAC = '9454569d4a848d618cae1f1edd4e42d4ee3356d3';
export const JOIN_SYN_PKT =
  '450000487de940004006a40e0a5b02010a5b0202a25f1451d317f03800000000d002faf018f30000020405b40402080a611b7c74000000000103030a1e0c10011880071a6adea0d3';
export const JOIN_SYNACK_PKT =
  '4500004c00004000400621f40a5b02020a5b02011451a25fa50b3960d317f039e012fe8818f70000020405b40402080ac7207237611b7c740103030a1e1010013b94d6ebb4bcd8bfbb93649f';
export const JOIN_ACK_PKT =
  '4500004c7dea40004006a4090a5b02010a5b0202a25f1451d317f039a50b3961e010003f18f700000101080a611b7c74c72072371e1810009454569d4a848d618cae1f1edd4e42d4ee3356d3';
/** The server's fourth ACK on the joined subflow: DSS flags 0x01 (A), Data ACK 32 bits 0x0a5b2c34. 8 bytes. */
export const DSS_DATA_ACK32_OPT = '1e0820010a5b2c34';

// Run 1, iperf3's data connection: 10.91.1.1.58170 > 10.91.1.2.5201, the end of the transfer.
// Keys: client 0x116b22e352ebb6c0, server 0x374d7277dd89ff39.

/**
 * The client's DATA_FIN, no data: flags 0x1d (F m M A): Data ACK 32 bits 0xa4506216, DSN
 * 0x2a05cf8724e09551, subflow sequence 0, data-level length 1 — the form RFC 8684 §3.3.3
 * prescribes for a DATA_FIN on a segment without data. 22 bytes.
 */
export const DSS_DATA_FIN_OPT = '1e16201da45062162a05cf8724e09551000000000001';
export const DSS_DATA_FIN_PKT =
  '4500004ce27640004006417d0a5b01010a5b0102e33a1451b640e5b6921df61fe010003f16f700000101080ac2379c1bd0b689161e16201da45062162a05cf8724e095510000000000010101';
/** The server's DATA_FIN: flags 0x1f (F m M a A): Data ACK 64 bits 0x2a05cf8724e09551, DSN 0x5effb04aa4506215, ssn 0, length 1. 26 bytes. */
export const DSS_DATA_FIN_ACK64_OPT = '1e1a201f2a05cf8724e095515effb04aa4506215000000000001';
export const DATA_CLIENT_KEY = 0x116b22e352ebb6c0n;
export const DATA_SERVER_KEY = 0x374d7277dd89ff39n;
/** The data connection's MP_JOIN SYN on link 2 (10.91.2.1.37019): B=0, Address ID 1, token 0x9e4c1e9c (= token(server key)), nonce 0x26ed2a31. */
export const JOIN_DATA_SYN_OPT = '1e0c10019e4c1e9c26ed2a31';
/** Its SYN/ACK: truncated HMAC 0xddb12186064c92e8, nonce 0x1f902d86. */
export const JOIN_DATA_SYNACK_OPT = '1e101001ddb12186064c92e81f902d86';
/** Its third ACK: the client's HMAC. */
export const JOIN_DATA_ACK_OPT = '1e181000bb2086cbccf2faefc057de5ca8e4e87897ca426b';

// Run 2, checksums: 10.91.1.1.52400 > 10.91.1.2.5202. Keys: client 0x698c46bdc2481aa1, server 0x6452ccede6ff6eff.

/** MP_CAPABLE on the SYN with flags A (checksum required) and H. */
export const MPC_SYN_CSUM_OPT = '1e040181';
export const MPC_SYNACK_CSUM_OPT = '1e0c01816452ccede6ff6eff';
export const MPC_ACK_CSUM_OPT = '1e140181698c46bdc2481aa16452ccede6ff6eff';
export const CSUM_CLIENT_KEY = 0x698c46bdc2481aa1n;
export const CSUM_SERVER_KEY = 0x6452ccede6ff6effn;
/**
 * The client's first data, "hello, kernel MPTCP with checksums\n" (35 bytes): DSS flags 0x0d,
 * Data ACK 32 bits 0x8b78c353, DSN 0x23c454758879f4c8, ssn 1, length 35, checksum 0xb15b. 24 bytes.
 */
export const CSUM_DATA_PKT =
  '4500006f16a5400040060d2c0a5b01010a5b0102ccb014521f2ad6f1464b1957e018003f171a00000101080ada5309d42cb7cda61e18200d8b78c35323c454758879f4c8000000010023b15b68656c6c6f2c206b65726e656c204d50544350207769746820636865636b73756d730a';
export const CSUM_DATA_OPT = '1e18200d8b78c35323c454758879f4c8000000010023b15b';
/**
 * The client's second write, 4096 bytes (bytes(range(256)) * 16; the packet is not kept: its
 * payload is known): DSN 0x23c454758879f4eb, ssn 36, length 4096, checksum 0xf640.
 */
export const CSUM_DATA2_OPT = '1e18200d8b78c35323c454758879f4eb000000241000f640';
/** The client's DATA_FIN (no data), checksummed over the pseudo-header alone: DSN 0x23c45475887a04eb, ssn 0, length 1, checksum 0xfa5f. */
export const CSUM_DATA_FIN_PKT =
  '4500004c16a9400040060d4b0a5b01010a5b0102ccb014521f2ae714464b1957e010003f16f700000101080ada530dbd2cb7d18f1e18201d8b78c35323c45475887a04eb000000000001fa5f';
/** The server's answer "got 4131\n": DSS flags 0x0f, Data ACK 64 bits, DSN 0x41b370e38b78c353, ssn 1, length 9, checksum 0xb1a0. 28 bytes. */
export const CSUM_REPLY_PKT =
  '450000591b2b4000400608bc0a5b01020a5b01011452ccb0464b19571f2ae714f0180040170400000101080a2cb7d383da530dbd1e1c200f23c45475887a04ec41b370e38b78c353000000010009b1a0676f7420343133310a';

// Run 3: MP_PRIO and REMOVE_ADDR (10.91.1.1.40292 > 10.91.1.2.5203, joined on link 2).

/** MP_PRIO from the server on the link-2 subflow: B=1. 3 bytes (Linux pads it with one NOP). */
export const MP_PRIO_OPT = '1e0351';
/** The packet: a DSS Data ACK (64 bits) and MP_PRIO in one segment. */
export const MP_PRIO_PKT =
  '4500004457c840004006ca330a5b02020a5b02011453e26ffb6e9b80c08e9ef6c010003f18ef00000101080abbfe56fb8499ad781e0c2003f0eb4785f13f7eed1e035101';
/** REMOVE_ADDR from the server on link 1: Address ID 1. 4 bytes. */
export const REMOVE_ADDR_OPT = '1e044001';
/** The packet: a DSS Data ACK and REMOVE_ADDR in one segment. */
export const REMOVE_ADDR_PKT =
  '45000044a3764000400680850a5b01020a5b010114539d648cad6ad16a801d9bc010003f16ef00000101080a9a2bf002bf5c8bb41e0c2003f0eb4785f13f7f3d1e044001';

// Run 4: MP_FASTCLOSE (10.91.1.1.37348 > 10.91.1.2.5204). The server's key, from its SYN/ACK:
// '1e0c0101e4ca6f8d4a1dcabc'.

/** MP_FASTCLOSE from the client: the receiver's (server's) key 0xe4ca6f8d4a1dcabc. 12 bytes. */
export const MP_FASTCLOSE_OPT = '1e0c7000e4ca6f8d4a1dcabc';
export const FASTCLOSE_SERVER_KEY = 0xe4ca6f8d4a1dcabcn;
/** MP_TCPRST beside it: flags 0 (not transient), reason 0 (unspecified). 4 bytes. */
export const MP_TCPRST_OPT = '1e048000';
/** The client's RST on link 1: [R.], with MP_FASTCLOSE and MP_TCPRST. */
export const FASTCLOSE_RST_PKT =
  '450000449a254000400689d60a5b01010a5b010291e41454d288a6659836b89cc014004016ef00000101080a38a97ac18440d7e81e0c7000e4ca6f8d4a1dcabc1e048000';

// Run 5: MP_CAPABLE with the first data (10.91.1.1 > 10.91.1.2.5205, then .5206 with checksums).

/**
 * MP_CAPABLE with data: v1, H, sender's key 0xb89311d24bc672bf (client), receiver's key
 * 0x2f502fe0ad0fa910, data-level length 11. 22 bytes.
 */
export const MPC_DATA_OPT = '1e160101b89311d24bc672bf2f502fe0ad0fa910000b';
export const MPC_DATA_PKT =
  '450000573f9940004006e44f0a5b01010a5b0102ba861455b371a10ea976b374e018003f170200000101080a795811e038a1845b1e160101b89311d24bc672bf2f502fe0ad0fa910000b0101666972737420646174610a';
/**
 * The same with checksums: v1, A and H, sender's key 0xfa0e414135bd3982, receiver's key
 * 0x44af786aa2986891, length 11, checksum 0x4991 — over DSN = IDSN(sender's key) + 1, subflow
 * sequence 1, "first data\n". 24 bytes.
 */
export const MPC_DATA_CSUM_OPT = '1e180181fa0e414135bd398244af786aa2986891000b4991';
export const MPC_DATA_CSUM_PKT =
  '4500005747c840004006dc200a5b01010a5b0102b14014569dcd18cc07f2729ae018003f170200000101080a8072fab0a7f1b8b51e180181fa0e414135bd398244af786aa2986891000b4991666972737420646174610a';

// Run 6, IPv6: [fd00:91:1::1]:48350 > [fd00:91:1::2]:5207. Keys: client 0x3427ff9025356c69, server 0xceb8fd83aad2c9d1.

/**
 * ADD_ADDR from the server: E=0, Address ID 1, fd00:91:2::2, port 5299, truncated HMAC
 * 0x6c8e825001a0c07a. 30 bytes.
 */
export const ADD_ADDR6_PORT_OPT = '1e1e3001fd00009100020000000000000000000214b36c8e825001a0c07a';
export const ADD_ADDR6_PORT_HMAC = 0x6c8e825001a0c07an;
export const V6_CLIENT_KEY = 0x3427ff9025356c69n;
export const V6_SERVER_KEY = 0xceb8fd83aad2c9d1n;
/** The whole IPv6 packet that carries it. */
export const ADD_ADDR6_PORT_PKT =
  '60091aa300340640fd000091000100000000000000000002fd0000910001000000000000000000011457bcde1bb6e66e6d3928f4d010003ffb6200001e1e3001fd00009100020000000000000000000214b36c8e825001a0c07a0101';
/** The client's echo: E=1, Address ID 1, fd00:91:2::2, port 5299. 22 bytes. */
export const ADD_ADDR6_PORT_ECHO_OPT = '1e163101fd00009100020000000000000000000214b3';
/** MP_JOIN on the SYN of the backup subflow to [fd00:91:2::2]:5299: B=1, Address ID 2, token 0x01c24e7e, nonce 0xbd0620dc. */
export const JOIN_SYN_BACKUP_OPT = '1e0c110201c24e7ebd0620dc';
