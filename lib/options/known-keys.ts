import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { messages } from '../redis-tx.messages.js';
import { closestName } from './closest-name.js';

/**
 * The option names of an options type, listed once: the record must name
 * every key of `T` and nothing else, so the list cannot drift from the type.
 */
export function optionKeys<T extends object>(keys: Record<keyof T, true>): readonly string[] {
  return Object.keys(keys);
}

/**
 * Refuses an options object with a key not in `known`, naming it by its full
 * path (`locks.ttl`) and the closest known key, if one is close. `elsewhere`
 * explains keys that are valid options, only not here.
 */
export function refuseUnknownKeys(
  options: object,
  known: readonly string[],
  where: string,
  path = '',
  elsewhere: Readonly<Record<string, string>> = {},
): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const option = `${path}${key}`;
    const hint = Object.hasOwn(elsewhere, key) ? elsewhere[key] : undefined;
    const closest = hint === undefined ? closestName(key, known) : undefined;
    throw new InvalidOptionsError(
      option,
      messages.optionUnknown(where, option, {
        hint,
        closest: closest === undefined ? undefined : `${path}${closest}`,
        known: known.map((name) => `${path}${name}`),
      }),
    );
  }
}
