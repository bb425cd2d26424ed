import { LockNotAcquiredError } from '../../errors/lock-not-acquired.error.js';
import { messages } from '../../redis-tx.messages.js';
import type { HeldPart, ScriptMode } from '../held-lock.js';
import { lockRedisKeys } from '../lock-keys.js';
import type { LockStore } from '../lock-store.js';
import type { LockHandle } from './lock-handle.js';

export const scriptModes: Record<LockHandle['mode'], ScriptMode> = {
  write: 'w',
  read: 'r',
  semaphore: 's',
};

/** The parts of an adopted lock, and its lease as counted from the renewal that proved it. */
export interface AdoptedParts {
  parts: HeldPart[];
  sentAt: number;
  leaseEnd: number;
}

/**
 * Proves a handle still owns its lock by renewing every part by its token,
 * and counts the lease from when that renewal was sent (as for an
 * acquisition). The handle's own lease end is checked first, on the wall
 * clock, so a handle that surely came too late costs no round trip; the
 * renewal by token is what decides. On a refusal, the parts that were
 * renewed are released: the lock is lost as a whole.
 */
export async function adoptParts(
  store: LockStore,
  handle: LockHandle,
  keyPrefix: string,
): Promise<AdoptedParts> {
  const names = [...handle.keys];
  const lateMs = Date.now() - (handle.issuedAt + handle.leaseRemainingMs);
  if (lateMs >= 0) {
    throw new LockNotAcquiredError(messages.lockHandleExpired(names, lateMs), names, {
      reason: 'lease-expired',
    });
  }
  const mode = scriptModes[handle.mode];
  const parts: HeldPart[] = names.map((name, i) => ({
    name,
    keys: lockRedisKeys(keyPrefix, name),
    token: handle.tokens[i]!,
    fence: handle.fencingTokens[i]!,
  }));
  const sentAt = performance.now();
  const renewed = await Promise.allSettled(
    parts.map((part) => store.extend(part, mode, handle.ttlMs)),
  );
  const leaseEnd = store.leaseEndsAt(sentAt, handle.ttlMs);
  const held = renewed.map((r) => r.status === 'fulfilled' && r.value);
  if (held.every(Boolean) && performance.now() < leaseEnd) return { parts, sentAt, leaseEnd };
  await Promise.all(
    parts.map((part, i) => (held[i] ? store.release(part, mode).catch(() => false) : false)),
  );
  const failed = renewed.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    throw new LockNotAcquiredError(messages.lockUnreachable(names), names, {
      reason: 'connection',
      cause: failed.reason,
    });
  }
  throw new LockNotAcquiredError(messages.lockHandleNotOwner(names), names, {
    reason: 'lease-expired',
  });
}
