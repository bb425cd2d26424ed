import { addMethodLayer } from '../binding/method-layers.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { optionKeys, refuseUnknownKeys } from '../options/known-keys.js';
import { messages } from '../redis-tx.messages.js';
import type { OncePerTickOptions } from './cron-ticks.options.js';
import { declareTickMethod, tickRunnerOf } from './tick-methods.js';

const knownKeys = optionKeys<OncePerTickOptions>({
  job: true,
  cron: true,
  timeZone: true,
  misfire: true,
  lockTtlMs: true,
});

/**
 * Runs a `@Cron()` method at most once per scheduled tick across every
 * instance of the application: each firing claims its tick (the job's name
 * and the scheduled time it belongs to, computed from the cron expression
 * and this instance's clock) in Redis, and runs only when that tick is later
 * than every tick of the job claimed before. While it runs, it holds the
 * job's lock, so a slow run never overlaps the next tick's. A firing that
 * does not run resolves to undefined. Needs `CronTicksModule.forRoot()`.
 *
 * Named for what it promises per tick, not for how: it is not a lock with a
 * guessed duration (`@Locked` with `lockAtLeastFor`), and does not depend on
 * how far apart the instances' clocks are.
 */
export function OncePerTick(options: OncePerTickOptions = {}): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    const label = `@OncePerTick() on ${target.constructor.name}.${String(propertyKey)}`;
    checkOncePerTickOptions(options, label);
    declareTickMethod(target, propertyKey, options);
    addMethodLayer(
      target,
      descriptor,
      {
        // Outside the lock and transaction layers: a firing that does not
        // claim its tick takes no lock and starts no transaction.
        order: -1,
        run: (_runtime, self, _args, next) => tickRunnerOf(self, propertyKey, label)(next),
      },
      label,
    );
  };
}

function checkOncePerTickOptions(options: unknown, label: string): void {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionsError('options', messages.optionsNotObject(label, options));
  }
  refuseUnknownKeys(options, knownKeys, label);
  const { job, cron, timeZone, misfire, lockTtlMs } = options as OncePerTickOptions;
  const text = (name: string, value: unknown) => {
    if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) {
      throw new InvalidOptionsError(
        name,
        messages.optionInvalid(name, 'a non-empty string', value, label),
      );
    }
  };
  text('job', job);
  text('cron', cron);
  text('timeZone', timeZone);
  if (misfire !== undefined && misfire !== 'skip' && misfire !== 'run-once') {
    throw new InvalidOptionsError(
      'misfire',
      messages.optionInvalid('misfire', "'skip' or 'run-once'", misfire, label),
    );
  }
  if (lockTtlMs !== undefined && !(Number.isInteger(lockTtlMs) && lockTtlMs > 0)) {
    throw new InvalidOptionsError(
      'lockTtlMs',
      messages.optionInvalid('lockTtlMs', 'a positive whole number of ms', lockTtlMs, label),
    );
  }
}
