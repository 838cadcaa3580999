// Runs the routing set-up layer in the caller's network namespace (start it with
// `ip netns exec NS node dist/test/routing/setup-worker.js ...`; rtnetlink acts on the
// namespace of the process). Commands:
//   apply PLAN_JSON   apply, print the record as one JSON line, exit
//   hold PLAN_JSON    apply, print the record, then wait forever (the test SIGKILLs it)
//   undo RECORD_JSON  undo a record
//   cleanup           cleanupLeftovers(), print its report
//   grow PLAN_JSON ADDITION_JSON ROUTE_JSON
//                     apply, then addPathSteps(ADDITION) and replacePathRoute(ROUTE) as a running
//                     appliance would, print the record, exit
import { addPathSteps, applyPlan, cleanupLeftovers, replacePathRoute, undo, type PathAddition, type SetupPlan, type SetupRecord } from '../../src/routing/setup.js';
import type { RouteSpec } from '../../src/routing/route.js';

async function main(): Promise<void> {
  const [cmd, arg, arg2, arg3] = process.argv.slice(2);
  switch (cmd) {
    case 'apply':
    case 'hold': {
      const record = await applyPlan(JSON.parse(arg) as SetupPlan);
      process.stdout.write(`${JSON.stringify(record)}\n`);
      if (cmd === 'hold') setInterval(() => undefined, 1 << 30);
      return;
    }
    case 'grow': {
      const record = await applyPlan(JSON.parse(arg) as SetupPlan);
      await addPathSteps(record, JSON.parse(arg2) as PathAddition);
      await replacePathRoute(record, JSON.parse(arg3) as RouteSpec);
      process.stdout.write(`${JSON.stringify(record)}\n`);
      return;
    }
    case 'undo':
      await undo(JSON.parse(arg) as SetupRecord);
      return;
    case 'cleanup':
      process.stdout.write(`${JSON.stringify(await cleanupLeftovers())}\n`);
      return;
    default:
      throw new Error(`unknown command ${cmd}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}\n`);
  process.exit(1);
});
