// The path manager's part of one MPTCP connection (Linux's net/mptcp/pm.c, struct
// mptcp_pm_data), sans-IO: the addresses the peer announced (ADD_ADDR, REMOVE_ADDR), the
// echoes and REMOVE_ADDRs we owe it, MP_PRIO both ways. It only marks what must be signalled;
// the option writer (segment-options.ts) pulls it within the bytes left in the header
// (CONVENTIONS.md 6). Which subflows to open is the stack's path manager (pm-paths.ts).
import type { CounterSet } from '../ip/counters.js';
import type { AddAddr, MpPrio, MptcpOption, RemoveAddr } from './options.js';
import { addAddrHmac } from './crypto.js';
import type { MptcpCounterName } from './mib.js';
import type { Subflow } from './subflow.js';

export class ConnectionPm {
  /** Peer addresses announced with ADD_ADDR: id → address. */
  readonly remoteAddresses = new Map<number, { addr: Buffer; port: number }>();
  /** Set when the peer announced an address: the path manager looks. */
  addrAnnounced = false;
  private readonly removeAddrPending: number[] = [];
  private echoPending: Array<{ addressId: number; address: Buffer; port: number | undefined }> = [];

  constructor(private readonly counters: CounterSet<MptcpCounterName>) {}

  /** An ADD_ADDR arrived. True when an echo is now due (the caller has an ACK sent to carry it). */
  addAddrReceived(opt: AddAddr, localKey: bigint, remoteKey: bigint | null): boolean {
    if (opt.echo) {
      this.counters.increment('EchoAdd');
      return false;
    }
    // RFC 8684 §3.4.1: the HMAC (Key-A + Key-B, A the announcer) proves the announcer knows
    // both keys; a wrong one is dropped and counted
    if (remoteKey === null || opt.hmac === undefined || opt.hmac !== addAddrHmac(remoteKey, localKey, opt.addressId, opt.address, opt.port)) {
      this.counters.increment('AddAddrDrop');
      return false;
    }
    this.counters.increment('AddAddr');
    this.remoteAddresses.set(opt.addressId, { addr: opt.address, port: opt.port ?? 0 });
    this.addrAnnounced = true;
    // "the receiver ... MUST respond with the same option, with the E (echo) flag set": the
    // announcer retransmits until it sees the echo. One echo is owed per address ID: a
    // retransmission of an announcement whose echo has not gone yet replaces it (it is not owed
    // twice), one whose echo went (and was lost) is owed again
    const owed = this.echoPending.findIndex((e) => e.addressId === opt.addressId);
    const echo = { addressId: opt.addressId, address: opt.address, port: opt.port };
    if (owed >= 0) this.echoPending[owed] = echo;
    else this.echoPending.push(echo);
    return true;
  }

  /** RFC 8684 §3.4.2: a REMOVE_ADDR arrived: the addresses it names are gone. */
  removeAddrReceived(opt: RemoveAddr): void {
    this.counters.increment('RmAddr');
    for (const id of opt.addressIds) this.remoteAddresses.delete(id);
  }

  /** RFC 8684 §3.3.8: an MP_PRIO arrived on `sf`: the peer's wish for that subflow. */
  prioReceived(sf: Subflow, opt: MpPrio): void {
    this.counters.increment('MPPrioRx');
    sf.remoteBackup = opt.backup;
  }

  /** A local address is gone: a REMOVE_ADDR naming it is due. */
  localAddressRemoved(localId: number): void {
    this.removeAddrPending.push(localId);
  }

  /** ADD_ADDR echoes owed (each goes on a pure ACK). */
  get echoesOwed(): number {
    return this.echoPending.length;
  }

  /**
   * The signals due, written on a segment of `sf` that carries `payloadLen` bytes of data, by
   * `put` (false when the option does not fit in what is left of the header).
   */
  writeSignals(sf: Subflow, payloadLen: number, put: (opt: MptcpOption) => boolean): void {
    // RFC 8684 §3.3.8: "MP_PRIO ... to change the priority of the subflow on which it is sent"
    if (sf.prioPending && put({ type: 'mp_prio', backup: sf.localBackup })) {
      sf.prioPending = false;
      this.counters.increment('MPPrioTx');
    }
    // ADD_ADDR echoes (RFC 8684 §3.4.1), on segments without data: they are large
    while (this.echoPending.length > 0 && payloadLen === 0) {
      const e = this.echoPending[0]!;
      const echo: MptcpOption = { type: 'add_addr', echo: true, addressId: e.addressId, address: e.address };
      if (e.port !== undefined) echo.port = e.port;
      if (!put(echo)) break;
      this.echoPending.shift();
      this.counters.increment('EchoAddTx');
      // all sent: let the array's capacity go (an idle connection keeps its state for long)
      if (this.echoPending.length === 0) this.echoPending = [];
    }
    // RFC 8684 §3.4.2: REMOVE_ADDR names the address IDs that are gone
    if (this.removeAddrPending.length > 0 && payloadLen === 0 && put({ type: 'remove_addr', addressIds: this.removeAddrPending.slice(0, 8) })) {
      this.counters.increment('RmAddrTx');
      this.removeAddrPending.splice(0, 8);
    }
  }
}
