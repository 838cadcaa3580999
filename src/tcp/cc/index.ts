// The registry of congestion controllers, by name: 'cubic' (the default, as in Linux, Windows
// and Apple stacks: RFC 9438 §1) and 'newreno'. MPTCP's coupled controllers register here too.

import type { CongestionController, CongestionControllerFactory } from './controller.js';
import { Cubic } from './cubic.js';
import { NewReno } from './newreno.js';

export * from './controller.js';
export { ABC_L_SEGMENTS, LossBasedController, type LossBasedOptions } from './base.js';
export { Cubic, CUBIC_ALPHA, CUBIC_BETA, CUBIC_C, CUBIC_TARGET_MAX_GROWTH, cubicK, type CubicOptions, wCubic } from './cubic.js';
export { HyStartPlusPlus, type HyStartPhase, type HyStartStep } from './hystart.js';
export { NewReno } from './newreno.js';
export { Prr, type PrrReductionBound } from './prr.js';

/** The controller a connection gets when none is configured. */
export const DEFAULT_CONGESTION_CONTROLLER = 'cubic';

/** A name that is not in the registry (a configuration error, reported by the CLI). */
export class UnknownCongestionControllerError extends Error {
  constructor(readonly controller: string) {
    super(`unknown congestion controller: ${controller}`);
    this.name = 'UnknownCongestionControllerError';
  }
}

const registry = new Map<string, CongestionControllerFactory>([
  ['cubic', (mss) => new Cubic(mss)],
  ['newreno', (mss) => new NewReno(mss)],
]);

/** Adds (or replaces) a controller under `name`. */
export function registerCongestionController(name: string, factory: CongestionControllerFactory): void {
  registry.set(name, factory);
}

/** The registered names. */
export function congestionControllerNames(): string[] {
  return [...registry.keys()];
}

/** The factory registered under `name`, or undefined. */
export function congestionControllerFactory(name: string): CongestionControllerFactory | undefined {
  return registry.get(name);
}

/**
 * A new controller `name` ('cubic' is DEFAULT_CONGESTION_CONTROLLER) for a sender MSS; throws
 * UnknownCongestionControllerError for a name that is not registered.
 */
export function createCongestionController(name: string, mss: number): CongestionController {
  const factory = registry.get(name);
  if (!factory) throw new UnknownCongestionControllerError(name);
  return factory(mss);
}
