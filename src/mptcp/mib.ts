// The MPTCP counters (Linux's net/mptcp/mib.c, MPTcpExt...): the names of each connection's
// counters and of the stack's (its path manager's among them), in one place that the
// connection, its parts and the path manager all count into.

export const MPTCP_COUNTER_NAMES = [
  // named after the kernel's MIB (MPTcpExt...) where one matches
  'MPCapableSYNTX', 'MPCapableSYNACKRX', 'MPCapableACKTX', 'MPCapableFallbackSYNACK', 'MPJoinSynTx', 'MPJoinSynAckRx',
  'MPJoinSynAckHMacFailure', 'MPJoinAckTx', 'MPJoinSynRx', 'MPJoinAckRx', 'MPJoinAckHMacFailure',
  'DSSNotMatching', 'DataCsumErr', 'OFOQueue', 'DuplicateData', 'AddAddr', 'EchoAdd', 'RmAddr',
  'MPPrioRx', 'MPFastcloseRx', 'MPRstRx', 'Reinjections', 'ReinjectedBytes', 'DataFinRx', 'DataFinTx', 'InfiniteMapRx',
  'UnmappedData', 'SubflowsOpened', 'SubflowsClosed', 'MPJoinAckAcked', 'MPFastcloseBadKey', 'MPPrioTx', 'RmAddrTx', 'AddAddrDrop', 'EchoAddTx', 'MPJoinUnexpected', 'MPJoinSynAckMissing', 'FallbackLate', 'FallbackUnsafe', 'InfiniteMapTx', 'MPFailRx',
  'DataAckTimeouts',
  // the scheduler (src/mptcp/scheduler.ts): stale subflows as Linux's MPTcpExtSubflowStale /
  // SubflowRecover, reinjections when a slow path holds the window, redundant copies, waits
  'SubflowStale', 'SubflowRecover', 'ReinjectOpportunistic', 'RedundantMappings', 'RedundantBytes', 'SchedulerWaits',
  // subflows reset because they had not closed MPTCP_CLOSE_TIMEOUT_MS after both DATA_FINs
  'CloseTimeouts',
] as const;
export type MptcpCounterName = (typeof MPTCP_COUNTER_NAMES)[number];

export const MPTCP_STACK_COUNTER_NAMES = [
  'connectionsOpened', 'joinsOpened', 'portCollisions', 'connectionsAccepted', 'plainTcpAccepted', 'joinsAccepted', 'MPJoinNoTokenFound', 'subflowLimit',
  'addressIdsRenumbered', 'addressIdsExhausted',
  // an address the peer announced (ADD_ADDR) of a family no local path has: no subflow to it
  'addAddrOtherFamily',
  // an MP_JOIN for a connection whose MP_CAPABLE handshake has not brought the initiator's key
  'MPJoinNotEstablished',
  // a join that failed (refused, timed out, reset before it carried data) opened again after a back-off
  'joinRetries',
  // a failed join not tried again: the connection's retries are spent
  'joinRetriesExhausted',
  // a path went down under a connection with no other usable subflow: its subflows there kept
  // (not reset), then let go once another subflow is usable, or resumed when the path came back
  'subflowsHeldOnDownPath', 'heldSubflowsReleased', 'heldSubflowsResumed',
  // connections run by process() (only those with something new: input, a timer, the user)
  'connectionTicks',
] as const;
export type MptcpStackCounterName = (typeof MPTCP_STACK_COUNTER_NAMES)[number];
