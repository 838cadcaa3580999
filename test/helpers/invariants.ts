// Invariants every sans-IO node keeps, for tests (and the simulator's optional checks).
import type { Instant } from '../../src/ip/sansio.js';

/**
 * Every deadline either fires work or is cleared: after `handleTimeout(now)` (and whatever
 * processing the driver runs after it), the node's next deadline is null or later than `now`.
 * A deadline left at or before `now` makes the engine's timer fire at once, again and again
 * (a spin). Returns what is wrong, or null.
 */
export function deadlineViolation(node: { pollTimeout(): Instant | null }, now: Instant): string | null {
  const next = node.pollTimeout();
  if (next === null || next > now) return null;
  return `after handleTimeout(${now}) the next deadline is ${next}, not after now`;
}
