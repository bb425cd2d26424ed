import type { RedisClient } from '../connection/redis-client.js';
import type { LockService } from '../locks/lock.service.js';
import {
  checkLockAgeOptions,
  type RedisTxLockAgeDetails,
  type RedisTxLockAgeOptions,
  type RedisTxOverdueLock,
} from './lock-age.options.js';
import { scanLockNames } from './lock-names.scan.js';

/** How many locks are inspected at once: enough to be quick, few enough not to flood Redis. */
const INSPECT_BATCH = 20;

/** The locks, named or scanned, that have a holder older than `maxHeldMs`. */
export async function locksHeldTooLong(
  locks: LockService,
  client: RedisClient,
  keyPrefix: string,
  raw: RedisTxLockAgeOptions,
): Promise<RedisTxLockAgeDetails> {
  const options = checkLockAgeOptions(raw);
  const { names, complete } = options.keys
    ? { names: [...options.keys], complete: true }
    : await scanLockNames(client, keyPrefix, options.maxScannedKeys);
  const overdue: RedisTxOverdueLock[] = [];
  for (let i = 0; i < names.length; i += INSPECT_BATCH) {
    const seen = await Promise.all(names.slice(i, i + INSPECT_BATCH).map((n) => locks.inspect(n)));
    for (const lock of seen) {
      for (const holder of lock.holders) {
        if (holder.heldMs !== undefined && holder.heldMs > options.maxHeldMs) {
          overdue.push({
            key: lock.key,
            mode: holder.mode,
            heldMs: holder.heldMs,
            fencingToken: holder.fencingToken,
          });
        }
      }
    }
  }
  return { checked: names.length, complete, overdue };
}
