// The MPTCP layer (RFC 8684 v1): the option codec and the cryptography.
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
