import { createHash } from 'node:crypto';
import type { LockRedisKeys } from '../lock-keys.js';

/**
 * The set of holders `forceRelease()` evicted from a lock, as SHA-1 hashes of
 * their tokens (never the tokens), beside the lock's own keys and in their
 * Cluster slot. It expires by itself once no evicted holder can still renew.
 */
export function evictionsKey(keys: LockRedisKeys): string {
  return `${keys.writer}:x`;
}

/** How a token appears in the evictions set (Lua's `redis.sha1hex`). */
export function evictionId(token: string): string {
  return createHash('sha1').update(token).digest('hex');
}
