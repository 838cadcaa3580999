// The MPTCP layer (RFC 8684 v1): the option codec and the cryptography.
export * from './options.js';
export * from './crypto.js';
