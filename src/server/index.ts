// The concentrator (`mptun server`).
export * from './concentrator.js';
export * from './control.js';
export * from './key.js';
export * from './policy.js';
export * from './system.js';
