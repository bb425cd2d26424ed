import { hostname } from 'node:os';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { optionKeys, refuseUnknownKeys } from '../options/known-keys.js';
import { messages } from '../redis-tx.messages.js';
import type { CronTicksModuleOptions } from './cron-ticks.options.js';

export type ResolvedCronTicksOptions = Required<CronTicksModuleOptions>;

const where = 'CronTicksModule.forRoot()';
const knownKeys = optionKeys<CronTicksModuleOptions>({
  instanceId: true,
  clock: true,
  keyPrefix: true,
});

/** Checks the options (InvalidOptionsError naming the bad one) and fills in the defaults. */
export function resolveCronTicksOptions(options: unknown): ResolvedCronTicksOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionsError('options', messages.optionsNotObject(where, options));
  }
  refuseUnknownKeys(options, knownKeys, where);
  const { instanceId, clock, keyPrefix } = options as CronTicksModuleOptions;
  if (instanceId !== undefined && (typeof instanceId !== 'string' || instanceId === '')) {
    throw new InvalidOptionsError(
      'instanceId',
      messages.optionInvalid('instanceId', 'a non-empty string', instanceId, where),
    );
  }
  if (clock !== undefined && typeof clock !== 'function') {
    throw new InvalidOptionsError(
      'clock',
      messages.optionInvalid('clock', 'a function returning ms since the epoch', clock, where),
    );
  }
  if (keyPrefix !== undefined && typeof keyPrefix !== 'string') {
    throw new InvalidOptionsError(
      'keyPrefix',
      messages.optionInvalid('keyPrefix', 'a string', keyPrefix, where),
    );
  }
  return {
    instanceId: instanceId ?? `${hostname()}:${process.pid}`,
    clock: clock ?? Date.now,
    keyPrefix: keyPrefix ?? 'cron:',
  };
}
