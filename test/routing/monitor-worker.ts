// The monitor and path discovery inside a network namespace, for test/routing/monitor.test.ts
// (rtnetlink acts on the caller's namespace). Prints JSON lines.
//
//   discover [SKIP...]   the paths discoverPaths(SKIP) finds
//   discover6 [SKIP...]  the IPv6 paths discoverPaths(SKIP, 6) finds
//   state IFACE          interfaceState(IFACE) (null when there is none)
//   monitor              {"ready":true}, then one line per event; on SIGUSR2 closes the monitor,
//                        prints {"closed":true,"counters":...} and returns: nothing else keeps
//                        the process alive, so it exits only if close() left no handle behind
//   throw                a listener that throws at the first event (the process must end with
//                        an ordinary uncaught exception, not an abort in the native callback)
import { discoverPaths, interfaceState, NetlinkMonitor } from '../../src/routing/monitor.js';

const print = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
const [mode, ...args] = process.argv.slice(2);

switch (mode) {
  case 'discover':
    print(await discoverPaths(args));
    break;
  case 'discover6':
    print(await discoverPaths(args, 6));
    break;
  case 'state':
    print(await interfaceState(args[0]));
    break;
  case 'monitor': {
    const monitor = await NetlinkMonitor.open();
    monitor.on((e) => print({ event: e }));
    monitor.onError((e) => print({ error: { operation: e.operation, errno: e.errno } }));
    // a signal listener does not keep the event loop alive: only the monitor's socket does
    process.once('SIGUSR2', () => {
      monitor.close();
      print({ closed: true, counters: monitor.counters });
    });
    print({ ready: true });
    break;
  }
  case 'throw': {
    const monitor = await NetlinkMonitor.open();
    monitor.on(() => {
      throw new Error('listener boom');
    });
    print({ ready: true });
    break;
  }
  default:
    process.stderr.write(`unknown mode ${mode}\n`);
    process.exitCode = 2;
}
