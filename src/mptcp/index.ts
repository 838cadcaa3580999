// The MPTCP layer (RFC 8684 v1), split as Linux's net/mptcp: the option codec (options) and the
// cryptography; the counter names (mib); the subflow (subflow), the options of each segment
// (segment-options), the path manager (pm, pm-paths), the connection (protocol); the stack.
export * from './options.js';
export * from './crypto.js';
export * from './lia.js';
export * from './scheduler.js';
export * from './policy.js';
export * from './mapping.js';
export * from './mib.js';
export * from './subflow.js';
export * from './events.js';
export * from './pm.js';
export * from './pm-paths.js';
export * from './segment-options.js';
export * from './protocol.js';
export * from './stack.js';
