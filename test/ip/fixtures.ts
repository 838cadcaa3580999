// Packets captured from the Linux kernel (Debian 12 userland, this machine's kernel), as hex,
// from the IP header on (the 14-byte Ethernet header of the capture is removed).
//
// How they were captured (as root, throwaway namespaces deleted afterwards):
//
//   ip netns add mptip-a; ip netns add mptip-b
//   ip link add mptip-va netns mptip-a type veth peer name mptip-vb netns mptip-b
//   ip -n mptip-a addr add 192.0.2.1/24 dev mptip-va;  ip -n mptip-a addr add 2001:db8::1/64 dev mptip-va nodad
//   ip -n mptip-b addr add 192.0.2.2/24 dev mptip-vb;  ip -n mptip-b addr add 2001:db8::2/64 dev mptip-vb nodad
//   ip -n mptip-b link set mptip-vb up; (tcpdump in mptip-b) ip -n mptip-a link set mptip-va up   # MLD reports
//   ip netns exec mptip-a tcpdump -i mptip-va -n -xx -c 2 icmp &
//   ip netns exec mptip-a ping -c1 192.0.2.2          # and: ping -6 -c1 2001:db8::2, ping -R -c1 192.0.2.2,
//                                                     #      ping -s 1600 -c1 (fragments, v4 and v6)
//   ip netns exec mptip-{a,b} ethtool -K mptip-v{a,b} tx off   # full TCP checksums in software, then
//   python3 socket.create_connection(("192.0.2.2", 5002)) against a listener in mptip-b (and over IPv6)
//
// The first TCP capture (`KERNEL_SYN4_PARTIAL_CSUM`) was taken before `tx off`: veth offloads
// the TCP checksum (CHECKSUM_PARTIAL), so the checksum field holds only the folded pseudo-header
// sum, not complemented — which is a test of our pseudo-header sum in itself.

/** A fresh Buffer from hex (tests mutate their packets; fixtures stay intact). */
export function bytes(...hex: string[]): Buffer {
  return Buffer.from(hex.join('').replace(/\s+/g, ''), 'hex');
}

/** 192.0.2.1 > 192.0.2.2: ICMP echo request, id 4400, seq 1, length 64 (`ping -c1`). */
export const KERNEL_PING4_REQUEST =
  '45000054ec6a40004001ca3ac0000201c000020208004bd6113000012650076b' +
  '00000000a06a0e0000000000101112131415161718191a1b1c1d1e1f20212223' +
  '2425262728292a2b2c2d2e2f3031323334353637';

/** 192.0.2.2 > 192.0.2.1: ICMP echo reply, id 4400, seq 1, length 64: the kernel's answer to the above. */
export const KERNEL_PING4_REPLY =
  '45000054549100004001a214c0000202c0000201000053d6113000012650076b' +
  '00000000a06a0e0000000000101112131415161718191a1b1c1d1e1f20212223' +
  '2425262728292a2b2c2d2e2f3031323334353637';

/** 2001:db8::1 > 2001:db8::2: ICMP6, echo request, id 4404, seq 1, length 64 (`ping -6 -c1`). */
export const KERNEL_PING6_REQUEST =
  '600cd9b900403a4020010db800000000000000000000000120010db800000000' +
  '00000000000000028000564d113400012750076b00000000c0ff0e0000000000' +
  '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f' +
  '3031323334353637';

/** 2001:db8::2 > 2001:db8::1: ICMP6, echo reply, id 4404, seq 1: the kernel's answer (flow label 0xde5eb). */
export const KERNEL_PING6_REPLY =
  '600de5eb00403a4020010db800000000000000000000000220010db800000000' +
  '00000000000000018100554d113400012750076b00000000c0ff0e0000000000' +
  '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f' +
  '3031323334353637';

/**
 * 192.0.2.1 > 192.0.2.2: ICMP echo request with the Record Route option (`ping -R -c1`):
 * IHL 15 (60-byte header), option 7 length 39 pointer 8, one address recorded, then EOL.
 */
export const KERNEL_PING4_RR_REQUEST =
  '4f00007cf85140004001ca1ac0000201c000020201072708c000020100000000' +
  '000000000000000000000000000000000000000000000000000000000800939e' +
  '114700013450076b000000004d8b0b0000000000101112131415161718191a1b' +
  '1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637';

/** The kernel's reply to the Record Route request: options returned with three addresses recorded. */
export const KERNEL_PING4_RR_REPLY =
  '4f00007c5faf000040016e61c0000202c0000201072710c0000201c0000202c0' +
  '0002020000000000000000000000000000000000000000000000000000009b9e' +
  '114700013450076b000000004d8b0b0000000000101112131415161718191a1b' +
  '1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637';

/** The last fragment of `ping -s 1600`: offset 1480 (0xb9 units), MF clear, 128 data bytes. */
export const KERNEL_FRAG4_LAST =
  '45000094f88b00b94001fd20c0000201c0000202c0c1c2c3c4c5c6c7c8c9cacb' +
  'cccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaeb' +
  'ecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b' +
  '0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b' +
  '2c2d2e2f303132333435363738393a3b3c3d3e3f';

/** The last fragment of `ping -6 -s 1600`: Fragment header, next 58, offset 1448, M clear, id 0xae612d84. */
export const KERNEL_FRAG6_LAST =
  '600cd9b900a82c4020010db800000000000000000000000120010db800000000' +
  '00000000000000023a0005a8ae612d84a0a1a2a3a4a5a6a7a8a9aaabacadaeaf' +
  'b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf' +
  'd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef' +
  'f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f' +
  '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f' +
  '303132333435363738393a3b3c3d3e3f';

/**
 * :: > ff02::16: MLDv2 report sent by the kernel when the link came up. Hop-by-Hop header
 * (next 58, length 0 = 8 bytes) with Router Alert (5, len 2, value 0 = MLD) and PadN, then
 * ICMPv6 type 143.
 */
export const KERNEL_MLD_REPORT_HBH =
  '600000000038000100000000000000000000000000000000ff02000000000000' +
  '00000000000000163a000502000001008f00cd8d0000000204000000ff020000' +
  '0000000000000001ffd99f0704000000ff0200000000000000000001ff000002';

/** 192.0.2.1.45654 > 192.0.2.2.5002: SYN, mss 1460, sackOK, TS, nop, wscale 10 (checksum computed in software). */
export const KERNEL_SYN4 =
  '4500003ceca440004006ca13c0000201c0000202b256138afe36035900000000' +
  'a002faf0261f0000020405b40402080aac3e2f3a000000000103030a';

/** 192.0.2.2.5002 > 192.0.2.1.45654: the kernel's SYN-ACK (IP ident 0, DF). */
export const KERNEL_SYNACK4 =
  '4500003c000040004006b6b8c0000202c0000201138ab256f4fb7b17fe36035a' +
  'a012fe888d4a0000020405b40402080a6690be87ac3e2f3a0103030a';

/** 2001:db8::1.55014 > 2001:db8::2.5002: SYN, mss 1440, sackOK, TS, nop, wscale 10. */
export const KERNEL_SYN6 =
  '600041e40028064020010db800000000000000000000000120010db800000000' +
  '0000000000000002d6e6138a5ee95dd800000000a002fd20d3780000020405a0' +
  '0402080a69e70ae9000000000103030a';

/** 2001:db8::2.5002 > 2001:db8::1.55014: the kernel's SYN-ACK. */
export const KERNEL_SYNACK6 =
  '600ebd800028064020010db800000000000000000000000220010db800000000' +
  '0000000000000001138ad6e6a0807bc55ee95dd9a012fb04bfb50000020405a0' +
  '0402080a4abdaeca69e70ae90103030a';

/**
 * 192.0.2.1.54234 > 192.0.2.2.5001: SYN captured with veth TX checksum offload on. The TCP
 * checksum field (0x8432) is the folded pseudo-header sum the kernel leaves for the "device"
 * (CHECKSUM_PARTIAL: `~csum_tcpudp_magic(saddr, daddr, len, IPPROTO_TCP, 0)`).
 */
export const KERNEL_SYN4_PARTIAL_CSUM =
  '4500003c0e6640004006a852c0000201c0000202d3da1389e8c0423200000000' +
  'a002faf084320000020405b40402080a87e5be22000000000103030a';
