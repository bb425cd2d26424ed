import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { HeldLock } from '../locks/held-lock.js';
import type { Lock } from '../locks/lock.js';
import { ReentrantLock } from '../locks/reentrant-lock.js';
import { messages } from '../redis-tx.messages.js';

/**
 * Ends a held lock's lease now, as if it had run out, so that a test can
 * check how its code handles the loss: `lock.signal` aborts with
 * LockLostError, `lock.extend()` returns false, and the lock is free for
 * another caller at once. Works with the Redis store and the in-memory one.
 * The holder's own `release()` still runs as usual (and returns false).
 *
 * @param lock what `LockService.acquire()`, `tryAcquire()` or `using()` gave,
 *   or `LockService.current()` inside a `@Locked` method.
 */
export async function expireLock(lock: Lock): Promise<void> {
  const held =
    lock instanceof ReentrantLock ? lock.locks : lock instanceof HeldLock ? [lock] : undefined;
  if (!held) throw new InvalidOptionsError('lock', messages.expireLockForeign);
  await Promise.all(held.map((h) => h.expireNow()));
}
