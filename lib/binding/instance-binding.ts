import { UnboundInstanceError } from '../errors/unbound-instance.error.js';
import { messages } from '../redis-tx.messages.js';
import { processGlobal } from '../shared/process-global.js';
import type { LockService } from '../locks/lock.service.js';
import type { TransactionRunner } from '../transactions/transaction.runner.js';

/** What a decorated method needs at call time, from the module instance that owns its object. */
export interface RedisTxRuntime {
  transactions: TransactionRunner;
  locks: LockService;
}

interface BindingRegistry {
  /** Prototypes that declare decorated methods. */
  decorated: WeakSet<object>;
  /** Each Nest-created object with decorated methods → the runtime of the application that created it. */
  runtimes: WeakMap<object, RedisTxRuntime>;
}

// Decorators run when a class is defined, before any module exists, so they
// can only reach the module through this registry. Keyed per object (so two
// applications in one process never share one) and one per process (so a
// class decorated through one build of this package is bound by a module
// from the other: the decorators then call that module's runtime).
const registry = processGlobal<BindingRegistry>('bindings.v1', () => ({
  decorated: new WeakSet(),
  runtimes: new WeakMap(),
}));

export function markDecorated(prototype: object): void {
  registry.decorated.add(prototype);
}

export function hasDecoratedMethods(instance: object): boolean {
  for (let p: object | null = instance; p; p = Object.getPrototypeOf(p) as object | null) {
    if (registry.decorated.has(p)) return true;
  }
  return false;
}

export function bindRuntime(instance: object, runtime: RedisTxRuntime): void {
  registry.runtimes.set(instance, runtime);
}

export function runtimeOf(instance: unknown, label: string): RedisTxRuntime {
  const runtime =
    typeof instance === 'object' && instance !== null ? registry.runtimes.get(instance) : undefined;
  if (!runtime) throw new UnboundInstanceError(messages.unboundInstance(label));
  return runtime;
}
