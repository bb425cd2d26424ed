import { UnboundInstanceError } from '../errors/unbound-instance.error.js';
import { messages } from '../redis-tx.messages.js';
import { processGlobal } from '../shared/process-global.js';
import type { OncePerTickOptions } from './cron-ticks.options.js';

/** Runs one firing of a bound `@OncePerTick()` method: `next` is the method itself (with its inner decorators). */
export type TickRunner = (next: () => Promise<unknown>) => Promise<unknown>;

interface TickMethods {
  /** Prototype → the `@OncePerTick()` methods it declares, with their options. */
  declared: WeakMap<object, Map<string | symbol, OncePerTickOptions>>;
  /** Nest-created object → its methods' runners, made by the CronTicks of the application that created it. */
  bound: WeakMap<object, Map<string | symbol, TickRunner>>;
}

// Filled by the decorator when a class is defined, before any module exists,
// and one per process, like the other decorators' bindings (see
// binding/instance-binding.ts), so both builds of the package share it.
const registry = processGlobal<TickMethods>('cron-ticks.v1', () => ({
  declared: new WeakMap(),
  bound: new WeakMap(),
}));

export function declareTickMethod(
  prototype: object,
  method: string | symbol,
  options: OncePerTickOptions,
): void {
  let methods = registry.declared.get(prototype);
  if (!methods) registry.declared.set(prototype, (methods = new Map()));
  methods.set(method, options);
}

/** The `@OncePerTick()` methods of `instance`, its class's and those it inherits, nearest first. */
export function declaredTickMethods(instance: object): Map<string | symbol, OncePerTickOptions> {
  const found = new Map<string | symbol, OncePerTickOptions>();
  for (let p = Object.getPrototypeOf(instance) as object | null; p; p = Object.getPrototypeOf(p)) {
    for (const [method, options] of registry.declared.get(p) ?? []) {
      if (!found.has(method)) found.set(method, options);
    }
  }
  return found;
}

export function bindTickRunner(instance: object, method: string | symbol, run: TickRunner): void {
  let runners = registry.bound.get(instance);
  if (!runners) registry.bound.set(instance, (runners = new Map()));
  runners.set(method, run);
}

export function tickRunnerOf(
  instance: unknown,
  method: string | symbol,
  label: string,
): TickRunner {
  const runner =
    typeof instance === 'object' && instance !== null
      ? registry.bound.get(instance)?.get(method)
      : undefined;
  if (!runner) throw new UnboundInstanceError(messages.cronTicksNotImported(label));
  return runner;
}
