// The RFC 8803 Convert protocol: message codec and mptun's cookie.
export * from './message.js';
export * from './cookie.js';
