// The network simulator, in one import. A test that runs a stack over two paths:
//
//   const sim = new Simulator({ seed: useSeed(t, 1) });          // useSeed/test from ./helpers.js
//   const client = sim.addNode(clientStack, 'client');           // any SansIoNode
//   const server = sim.addNode(serverStack, 'server');
//   sim.connect(client, 0, server, 0, { rateBps: 100e6, delayMs: 10 });
//   sim.connect(client, 1, server, 1, { rateBps: 10e6, delayMs: 40, loss: 0.01 }, { delayMs: 40 });
//   sim.at(0, () => clientStack.connect(...));                    // act at a virtual time
//   const r = sim.runUntilIdle({ maxTime: 60_000 });              // 'idle' | 'deadline' | 'maxEvents'
//   t.is(r.reason, 'idle'); t.like(sim.link('client:1->server:1')!.counters, { droppedQueue: 0 });
export type { Instant, SansIoNode, Transmit } from '../../src/ip/sansio.js';
export { Simulator, type RunOptions, type RunResult, type SimCounters, type SimulatorOptions } from './sim.js';
export {
  DEFAULT_LINK,
  duplex,
  Link,
  linkConfig,
  type Duplex,
  type Flight,
  type LinkConfig,
  type LinkCounters,
  type LinkEvent,
  type LinkOptions,
  type Outage,
  type TraceHook,
  type TraceRecord,
} from './link.js';
export { Rng, seedFromEnv } from './rng.js';
export {
  EchoNode,
  Forwarder,
  PacketSink,
  PacketSource,
  seqOf,
  sentAtOf,
  type ForwardHook,
  type PacketSourceOptions,
  type Received,
} from './nodes.js';
