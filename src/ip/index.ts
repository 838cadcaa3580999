// The IP layer's public API: header views and representations, checksums, address helpers,
// counters, the packet entry point and the echo responder. Sans-IO (DESIGN.md).

export * from './address.js';
export * from './bytes.js';
export * from './checksum.js';
export * from './counters.js';
export * from './icmp.js';
export * from './ipv4.js';
export * from './ipv6.js';
export * from './packet.js';
