import { InvalidOptionsError } from '../../errors/invalid-options.error.js';
import { messages } from '../../redis-tx.messages.js';
import type { LockHoldMode } from '../admin/lock-inspection.js';
import type { HeldPart } from '../held-lock.js';

/**
 * A held lock in a form another process can take over: a plain object that
 * survives `JSON.stringify`/`JSON.parse` (a queue job, a message), made by
 * `lock.toHandle()` and taken over by `LockService.adopt(handle)`.
 *
 * It carries the holder's secret tokens: whoever has the handle can renew
 * and release the lock, so pass it only through channels you would trust
 * with the lock itself, and never log it. Nothing else in it is secret.
 */
export interface LockHandle {
  /** The format of the handle; `adopt()` refuses one it does not know. */
  readonly version: 1;
  /** The names locked, sorted. */
  readonly keys: readonly string[];
  readonly mode: LockHoldMode;
  /** The fencing token of each key, in the order of `keys`; the adopter keeps them. */
  readonly fencingTokens: readonly number[];
  /** The holder's secret token for each key, in the order of `keys`. */
  readonly tokens: readonly string[];
  /** The lease length, which the adopter renews to. */
  readonly ttlMs: number;
  /** How long the lease had left, on the holder's clock, when the handle was made (`issuedAt`). */
  readonly leaseRemainingMs: number;
  /** When the handle was made: epoch ms on the holder's wall clock. */
  readonly issuedAt: number;
}

/** Builds the handle of a held lock whose lease has `leaseRemainingMs` left on this clock. */
export function lockHandle(
  parts: readonly HeldPart[],
  mode: LockHoldMode,
  ttlMs: number,
  leaseRemainingMs: number,
): LockHandle {
  return {
    version: 1,
    keys: parts.map((p) => p.name),
    mode,
    fencingTokens: parts.map((p) => p.fence),
    tokens: parts.map((p) => p.token),
    ttlMs,
    leaseRemainingMs: Math.max(0, Math.floor(leaseRemainingMs)),
    issuedAt: Date.now(),
  };
}

const modes: readonly string[] = ['write', 'read', 'semaphore'];

/**
 * Checks that `raw` is a handle `toHandle()` made (as it is, or after a JSON
 * round trip) and returns it; otherwise throws InvalidOptionsError, whose
 * message never repeats the tokens.
 */
export function checkLockHandle(raw: unknown): LockHandle {
  const refuse = (why: string): never => {
    throw new InvalidOptionsError('handle', messages.lockHandleInvalid(why));
  };
  if (typeof raw !== 'object' || raw === null) return refuse('is not an object');
  const handle = raw as Partial<Record<keyof LockHandle, unknown>>;
  if (handle.version !== 1) return refuse('has an unknown `version` (this version reads 1)');
  const { keys, fencingTokens, tokens } = handle;
  const list = (value: unknown, ok: (item: unknown) => boolean) =>
    Array.isArray(value) &&
    value.length > 0 &&
    Array.isArray(keys) &&
    value.length === keys.length &&
    value.every(ok);
  if (!list(keys, (k) => typeof k === 'string' && k !== '')) {
    return refuse('has no `keys`, or one that is not a name');
  }
  if (!list(fencingTokens, (f) => Number.isSafeInteger(f) && (f as number) > 0)) {
    return refuse('has no valid `fencingTokens` for its keys');
  }
  if (!list(tokens, (t) => typeof t === 'string' && /^[\w.@-]{16,200}$/.test(t))) {
    return refuse('has no valid `tokens` for its keys');
  }
  if (typeof handle.mode !== 'string' || !modes.includes(handle.mode)) {
    return refuse("has a `mode` other than 'write', 'read' or 'semaphore'");
  }
  for (const field of ['ttlMs', 'leaseRemainingMs', 'issuedAt'] as const) {
    const value = handle[field];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      return refuse(`has no valid \`${field}\` (a whole number of ms)`);
    }
  }
  if ((handle.ttlMs as number) < 1) return refuse('has a `ttlMs` below 1');
  return handle as LockHandle;
}
