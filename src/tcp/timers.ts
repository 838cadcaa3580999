// One timer table per connection (CONVENTIONS.md 4, after quinn-proto's TimerTable):
// deadlines indexed by kind; the engine arms one real timer for the earliest of the stack.
import type { Instant } from '../ip/sansio.js';

export const enum TcpTimer {
  /** RFC 6298 retransmission timer (also SYN and FIN retransmission). */
  Rto = 0,
  /** RFC 9293 §3.8.6.3 delayed ACK. */
  DelayedAck = 1,
  /** RFC 9293 §3.8.6.1 persist: zero-window probes. */
  Persist = 2,
  /** RFC 9293 §3.8.4 keep-alive (off unless configured). */
  KeepAlive = 3,
  /** RFC 9293 §3.6 TIME-WAIT: 2 MSL. */
  TimeWait = 4,
  /** Gives up a connection whose handshake or retransmissions last too long (RFC 9293 §3.8.3 R2). */
  UserTimeout = 5,
  /** RFC 8985 §7 tail loss probe. */
  Tlp = 6,
  /** RFC 8985 §6.3 RACK reordering timer. */
  Rack = 7,
}
const TIMER_COUNT = 8;

export class TimerTable {
  // an array of doubles (V8 keeps its elements unboxed): 96 bytes, where a Float64Array with its
  // ArrayBuffer takes some 280; three per flow, and thousands of flows are held
  private readonly deadlines: number[] = [Infinity, Infinity, Infinity, Infinity, Infinity, Infinity, Infinity, Infinity];

  set(kind: TcpTimer, at: Instant): void {
    this.deadlines[kind] = at;
  }

  stop(kind: TcpTimer): void {
    this.deadlines[kind] = Infinity;
  }

  isArmed(kind: TcpTimer): boolean {
    return this.deadlines[kind] !== Infinity;
  }

  get(kind: TcpTimer): Instant {
    return this.deadlines[kind]!;
  }

  /** True (and the timer stopped) when it is armed and due at `now`. */
  expire(kind: TcpTimer, now: Instant): boolean {
    if (this.deadlines[kind]! <= now) {
      this.deadlines[kind] = Infinity;
      return true;
    }
    return false;
  }

  next(): Instant | null {
    let min = Infinity;
    for (let i = 0; i < TIMER_COUNT; i++) if (this.deadlines[i]! < min) min = this.deadlines[i]!;
    return min === Infinity ? null : min;
  }

  clear(): void {
    this.deadlines.fill(Infinity);
  }
}
