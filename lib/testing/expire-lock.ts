import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { HeldLock } from '../locks/held-lock.js';
import type { Lock } from '../locks/lock.js';
import { LockService } from '../locks/lock.service.js';
import { ReentrantLock } from '../locks/reentrant-lock.js';
import { messages } from '../redis-tx.messages.js';
import { LockExpectationError } from './errors/lock-expectation.error.js';

/**
 * Ends a held lock's lease now, as if it had run out, so that a test can
 * check how its code handles the loss: `lock.signal` aborts with
 * LockLostError, `lock.extend()` returns false, and the lock is free for
 * another caller at once. Works with the Redis store and the in-memory one.
 * The holder's own `release()` still runs as usual (and returns false).
 *
 * @param lock what `LockService.acquire()`, `tryAcquire()` or `using()` gave.
 */
export function expireLock(lock: Lock): Promise<void>;
/**
 * Ends now the lease of every lock `locks` holds on `key`, whoever took it:
 * the way to reach the lock of a running `@Locked` method from a test.
 * Throws LockExpectationError when it holds none.
 *
 * @param locks the application's LockService, e.g. `app.get(LockService)`.
 */
export function expireLock(locks: LockService, key: string): Promise<void>;
export async function expireLock(target: Lock | LockService, key?: string): Promise<void> {
  const held = target instanceof LockService ? heldOn(target, key) : heldIn(target);
  await Promise.all(held.map((lock) => lock.expireNow()));
}

function heldOn(locks: LockService, key: string | undefined): HeldLock[] {
  if (typeof key !== 'string') {
    throw new InvalidOptionsError(
      'key',
      messages.optionInvalid('key', 'a lock key', key, 'expireLock()'),
    );
  }
  const held = locks.heldOn(key);
  if (held.length === 0) throw new LockExpectationError(messages.lockNotHeldNow(key), key);
  return held;
}

function heldIn(lock: Lock): readonly HeldLock[] {
  if (lock instanceof ReentrantLock) return lock.locks;
  if (lock instanceof HeldLock) return [lock];
  throw new InvalidOptionsError('lock', messages.expireLockForeign);
}
