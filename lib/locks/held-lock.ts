import { channels } from '../diagnostics/redis-tx.channels.js';
import { endLockHold } from '../diagnostics/lock.tracing.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { LockLostError, type LockLossReason } from '../errors/lock-lost.error.js';
import { messages } from '../redis-tx.messages.js';
import { checkLockOptions } from './lock-options.validator.js';
import type { Lock } from './lock.js';
import type { LockRedisKeys } from './lock-keys.js';
import type { LockMode } from './lock.options.js';
import { lockHandle, type LockHandle } from './portable/lock-handle.js';

/** One name of a lock as held in Redis. */
export interface HeldPart {
  name: string;
  keys: LockRedisKeys;
  token: string;
  fence: number;
}

/** What a held lock needs from the service: the scripts, bound to its connection. */
export interface LockBackend {
  extend(part: HeldPart, mode: ScriptMode, ttlMs: number): Promise<boolean>;
  release(part: HeldPart, mode: ScriptMode): Promise<boolean>;
  /** When a lease of `ttlMs` set by a request sent at `sentAt` may have ended (see lease-validity.ts). */
  leaseEndsAt(sentAt: number, ttlMs: number): number;
  forget(lock: HeldLock): void;
  /** Why a part whose renewal found it gone was lost (see LockStore.lossReason). */
  lossReason(part: HeldPart): Promise<LockLossReason>;
}

export type ScriptMode = 'w' | 'r' | 's';

/** How a lock is held, as `Lock.mode` and the diagnostics events name it. */
export function modeName(mode: ScriptMode): 'write' | 'read' | 'semaphore' {
  return mode === 's' ? 'semaphore' : mode === 'r' ? 'read' : 'write';
}

/** A renewal that failed outright is retried no sooner than this, so an error that comes back at once cannot spin. */
const RETRY_PAUSE_SHARE = 1 / 30;

/**
 * A lock this process holds, with its lease watchdog: one timer, due at the
 * next renewal or at the local end of the lease, whichever comes first.
 *
 * The lease counts from when the request that set it was sent (the
 * acquisition, or the last renewal that got through), less the drift margin:
 * Redis started it no earlier, so however slow a reply, the local end is
 * never later than Redis's. The timer runs from acquisition, so `signal`
 * aborts at the local end even if no renewal ever ran; and because a frozen
 * process runs no timers, `signal` and {@link assertLeaseValid} also compare
 * the clock themselves, so code that resumes after a freeze sees the loss
 * before it does anything else. Renewals are sent at a third of the lease
 * after the previous one was sent (at once, if its reply came later than
 * that), one at a time. No timer outlives the lock; the AbortController is
 * made on first use.
 */
export class HeldLock implements Lock {
  private controller?: AbortController;
  private fences?: ReadonlyMap<string, number>;
  private lost = false;
  private lossError?: LockLostError;
  /** performance.now() after which the lease may have ended in Redis. */
  private leaseEnd: number;
  /** When the request behind `leaseEnd` was sent: a renewal sent earlier never replaces it. */
  private leaseSentAt: number;
  /** The length of the lease behind `leaseEnd`, for messages. */
  private leaseMs: number;
  /** When the next renewal is due; undefined while one is on its way. */
  private renewDue: number | undefined;
  private timer?: NodeJS.Timeout;
  private holds = 1;
  private released = false;
  private readonly acquiredAt = performance.now();

  constructor(
    readonly parts: readonly HeldPart[],
    readonly mode: LockMode | 'semaphore',
    readonly scriptMode: ScriptMode,
    private readonly ttlMs: number,
    private readonly backend: LockBackend,
    sentAt: number,
    leaseEnd: number,
  ) {
    this.leaseSentAt = sentAt;
    this.leaseMs = ttlMs;
    this.leaseEnd = leaseEnd;
    this.renewDue = sentAt + this.renewEveryMs;
    this.arm();
  }

  get fencingTokens(): ReadonlyMap<string, number> {
    return (this.fences ??= new Map(this.parts.map((p) => [p.name, p.fence])));
  }

  get keys(): readonly string[] {
    return this.parts.map((p) => p.name);
  }

  get fencingToken(): number {
    return this.parts[0]!.fence;
  }

  get signal(): AbortSignal {
    this.loseIfLeaseEnded();
    return (this.controller ??= new AbortController()).signal;
  }

  /** Throws the LockLostError `signal` aborted with when the lock is lost, or its lease has ended on this process's clock. */
  assertLeaseValid(): void {
    this.loseIfLeaseEnded();
    if (this.lossError) throw this.lossError;
  }

  /** Another hold in the same call chain (re-entry); the lock is released when the last one is. */
  enter(): void {
    this.holds++;
  }

  /**
   * Tells the holder to stop, without letting go: `signal` aborts with
   * `reason`, and the lease is still renewed so that the holder can finish
   * and release as usual.
   */
  abortHolder(reason: Error): void {
    if (this.released || this.lost) return;
    (this.controller ??= new AbortController()).abort(reason);
  }

  /** Releases the lock however many holds the call chain has on it (at shutdown): once, and for all of them. */
  releaseAllHolds(): Promise<boolean> {
    if (this.holds > 1) this.holds = 1;
    return this.release();
  }

  async release(): Promise<boolean> {
    if (this.released) return false;
    if (--this.holds > 0) return true;
    this.released = true;
    this.stopWatchdog();
    this.backend.forget(this);
    // Even after a loss the key may still be ours (Redis was only slow); the
    // script deletes it only if it still carries this holder's token.
    const { parts } = this;
    // Most locks have one name: no Promise.all and its arrays for them.
    const released =
      parts.length === 1
        ? await this.backend.release(parts[0]!, this.scriptMode)
        : (await Promise.all(parts.map((p) => this.backend.release(p, this.scriptMode)))).every(
            Boolean,
          );
    channels.lockRelease.publish(() => ({
      keys: this.keys,
      heldMs: performance.now() - this.acquiredAt,
      released,
    }));
    return released;
  }

  /**
   * Gives the lock up, but leaves it in Redis until `atLeastMs` after it was
   * acquired (`lockAtLeastFor`): the lease is cut, by token, to what remains,
   * and ends by itself. This process forgets the lock at once, so neither the
   * watchdog nor the shutdown releases it early. Released as usual when that
   * time has passed, or when an outer hold in the call chain still has it.
   */
  async releaseKeeping(atLeastMs: number): Promise<boolean> {
    const remainingMs = Math.ceil(this.acquiredAt + atLeastMs - performance.now());
    if (remainingMs <= 0 || this.holds > 1 || this.released || this.lost) return this.release();
    this.holds = 0;
    this.released = true;
    this.stopWatchdog();
    this.backend.forget(this);
    // The remainder is a new lease length, set exactly: it may be shorter or
    // longer than the lease left now, never longer than what was asked.
    const kept = (
      await Promise.all(this.parts.map((p) => this.backend.extend(p, this.scriptMode, remainingMs)))
    ).every(Boolean);
    channels.lockRelease.publish(() => ({
      keys: this.keys,
      heldMs: performance.now() - this.acquiredAt,
      released: kept,
    }));
    return kept;
  }

  /**
   * Ends the lease now, as if it had run out (for tests: `expireLock` of
   * `nestjs-redis-tx/testing`): `signal` aborts with LockLostError, and the
   * store lets go of the lock by token, so another caller can take it at once.
   * Holds stay counted: the holder's own release still ends them (and returns false).
   */
  async expireNow(): Promise<void> {
    if (this.released || this.lost) return;
    this.lose(
      messages.lockLost(this.keys.join(', '), messages.lockExpiredByTest),
      'expired-by-test',
    );
    await Promise.all(
      this.parts.map((p) => this.backend.release(p, this.scriptMode).catch(() => false)),
    );
  }

  /**
   * Hands the lock over (see Lock.toHandle): from here on this process
   * neither renews nor releases it, `signal` aborts with LockLostError
   * (`handed-over`), and release() returns false without touching the store.
   */
  toHandle(): LockHandle {
    this.loseIfLeaseEnded();
    if (this.lossError && !this.released) throw this.lossError;
    if (this.released) {
      throw new InvalidOptionsError('toHandle', messages.lockHandleNotHeld(this.keys));
    }
    if (this.holds > 1) {
      throw new InvalidOptionsError('toHandle', messages.lockHandleReentered(this.keys));
    }
    const handle = lockHandle(this.parts, this.mode, this.ttlMs, this.leaseEnd - performance.now());
    this.holds = 0;
    this.released = true;
    this.stopWatchdog();
    this.backend.forget(this);
    const keys = this.keys.join(', ');
    this.lossError = new LockLostError(messages.lockLost(keys, messages.lockHandedOver), keys, {
      reason: 'handed-over',
    });
    (this.controller ??= new AbortController()).abort(this.lossError);
    return handle;
  }

  async extend(ttlMs = this.ttlMs): Promise<boolean> {
    // A lease of 0 or less would make Redis delete the key: refuse before any I/O.
    checkLockOptions({ ttlMs }, 'Lock.extend()');
    this.loseIfLeaseEnded();
    if (this.released || this.lost) return false;
    return this.renewFrom(performance.now(), ttlMs);
  }

  private get renewEveryMs(): number {
    return Math.max(1, this.ttlMs / 3);
  }

  /** Sends a renewal now (`sentAt`) and, when it gets through in time, counts the lease from `sentAt`. */
  private async renewFrom(sentAt: number, ttlMs: number): Promise<boolean> {
    const results = await Promise.all(
      this.parts.map((p) => this.backend.extend(p, this.scriptMode, ttlMs)),
    );
    // Released while the renewal was on its way: arm nothing more.
    if (this.released) return false;
    // A reply that came after the lease it renewed had ended locally proves
    // nothing about the time between: the lock counts as lost from that end.
    this.loseIfLeaseEnded();
    if (this.lost || !results.every(Boolean)) {
      const reason = this.lost ? 'lease-expired' : await this.whyGone(results);
      // Released while the store was asked: release() has settled the parts.
      if (this.released && !this.lost) return false;
      this.lose(
        messages.lockLost(
          this.keys.join(', '),
          reason === 'force-released'
            ? messages.lockForceReleased
            : 'its lease had ended and another holder may have taken it',
        ),
        reason,
      );
      this.freeRenewed(results);
      return false;
    }
    if (sentAt >= this.leaseSentAt) {
      this.leaseSentAt = sentAt;
      this.leaseMs = ttlMs;
      this.leaseEnd = this.backend.leaseEndsAt(sentAt, ttlMs);
      this.arm();
    }
    channels.lockRenew.publish(() => ({
      keys: this.keys,
      durationMs: performance.now() - sentAt,
    }));
    return true;
  }

  /** Asks the store why the parts a renewal found gone were lost; a store that cannot tell says the lease ended. */
  private async whyGone(results: readonly boolean[]): Promise<LockLossReason> {
    const gone = this.parts.filter((_, i) => !results[i]);
    const reasons = await Promise.all(
      gone.map((part) =>
        this.backend.lossReason(part).catch((): LockLossReason => 'lease-expired'),
      ),
    );
    return reasons.includes('force-released') ? 'force-released' : 'lease-expired';
  }

  /**
   * A renewal that got through after the lock was declared lost (it was held
   * up past the lease) gave a whole new lease to a holder that has stopped:
   * free those keys now rather than leave them taken for another `ttlMs`.
   */
  private freeRenewed(results: readonly boolean[]): void {
    this.parts.forEach((part, i) => {
      if (results[i]) void this.backend.release(part, this.scriptMode).catch(() => false);
    });
  }

  private stopWatchdog(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Sets the one timer for whichever comes first: the next renewal, or the local end of the lease. */
  private arm(): void {
    clearTimeout(this.timer);
    const due =
      this.renewDue === undefined ? this.leaseEnd : Math.min(this.renewDue, this.leaseEnd);
    // Rounded up: a timer may fire a fraction of a millisecond before `due`.
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, Math.ceil(due - performance.now())));
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.released || this.lost) return;
    // The lease first: a process resumed after a freeze gives the lock up
    // rather than renew a lease that may already be someone else's.
    if (this.loseIfLeaseEnded()) return;
    if (this.renewDue !== undefined && performance.now() >= this.renewDue) this.renew();
    this.arm();
  }

  private renew(): void {
    this.renewDue = undefined;
    const sentAt = performance.now();
    this.renewFrom(sentAt, this.ttlMs).then(
      () => this.scheduleNextRenewal(sentAt, 0),
      // A failed renewal is retried; the lease end decides when it is too late.
      () => this.scheduleNextRenewal(sentAt, this.ttlMs * RETRY_PAUSE_SHARE),
    );
  }

  /** The next renewal: a third of the lease after this one was sent, or at once when that has passed. */
  private scheduleNextRenewal(sentAt: number, pauseMs: number): void {
    if (this.released || this.lost) return;
    this.renewDue = Math.max(sentAt + this.renewEveryMs, performance.now() + pauseMs);
    this.arm();
  }

  /** Declares the loss when the local lease end has passed; true when the lock is (now) lost. */
  private loseIfLeaseEnded(): boolean {
    if (this.lost) return true;
    if (this.released || performance.now() < this.leaseEnd) return false;
    this.lose(
      messages.lockLost(
        this.keys.join(', '),
        `its ${this.leaseMs} ms lease ran out before a renewal got through (counted from when the request that set it was sent, less the drift margin)`,
      ),
    );
    return true;
  }

  private lose(message: string, reason: LockLossReason = 'lease-expired'): void {
    if (this.lost) return;
    this.lost = true;
    this.stopWatchdog();
    channels.lockLoss.publish(() => ({ keys: this.keys, reason: message }));
    this.lossError = new LockLostError(message, this.keys.join(', '), { reason });
    endLockHold(this, this.lossError);
    // Aborted already by the shutdown: that reason stands (abort is once only).
    (this.controller ??= new AbortController()).abort(this.lossError);
  }
}
