import { channels } from '../diagnostics/redis-tx.channels.js';
import { LockLostError } from '../errors/lock-lost.error.js';
import { messages } from '../redis-tx.messages.js';
import { checkLockOptions } from './lock-options.validator.js';
import type { Lock } from './lock.js';
import type { LockRedisKeys } from './lock-keys.js';
import type { LockMode } from './lock.options.js';

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
  forget(lock: HeldLock): void;
}

export type ScriptMode = 'w' | 'r' | 's';

/**
 * A lock this process holds, with its lease watchdog: it renews the lease at a
 * third of its length, and aborts `signal` when renewal finds the lock gone or
 * the lease runs out before a renewal got through (Redis unreachable, process
 * stalled). No timer outlives the lock. Most locks are released long before
 * their first renewal, so until then only the renewal timer runs (the lease
 * cannot end before it), and the AbortController is made on first use.
 */
export class HeldLock implements Lock {
  private controller?: AbortController;
  private fences?: ReadonlyMap<string, number>;
  private lost = false;
  private leaseStartedAt: number;
  private leaseMs: number;
  private renewTimer?: NodeJS.Timeout;
  private leaseTimer?: NodeJS.Timeout;
  private holds = 1;
  private released = false;
  private readonly acquiredAt = performance.now();

  constructor(
    readonly parts: readonly HeldPart[],
    readonly mode: LockMode | 'semaphore',
    readonly scriptMode: ScriptMode,
    private readonly ttlMs: number,
    private readonly backend: LockBackend,
    leaseStartedAt: number,
  ) {
    this.leaseStartedAt = leaseStartedAt;
    this.leaseMs = ttlMs;
    this.scheduleRenewal();
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
    return (this.controller ??= new AbortController()).signal;
  }

  /** Another hold in the same call chain (re-entry); the lock is released when the last one is. */
  enter(): void {
    this.holds++;
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

  async extend(ttlMs = this.ttlMs): Promise<boolean> {
    // A lease of 0 or less would make Redis delete the key: refuse before any I/O.
    checkLockOptions({ ttlMs }, 'Lock.extend()');
    if (this.released || this.lost) return false;
    const started = performance.now();
    const results = await Promise.all(
      this.parts.map((p) => this.backend.extend(p, this.scriptMode, ttlMs)),
    );
    // Released or lost while the renewal was on its way: arm nothing more.
    if (this.released) return false;
    if (this.lost || !results.every(Boolean)) {
      this.lose(
        messages.lockLost(
          this.keys.join(', '),
          'its lease had ended and another holder may have taken it',
        ),
      );
      this.freeRenewed(results);
      return false;
    }
    this.leaseStartedAt = started;
    this.leaseMs = ttlMs;
    this.armLease();
    channels.lockRenew.publish(() => ({
      keys: this.keys,
      durationMs: performance.now() - started,
    }));
    return true;
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
    clearTimeout(this.renewTimer);
    clearTimeout(this.leaseTimer);
  }

  private scheduleRenewal(): void {
    this.renewTimer = setTimeout(
      () => {
        // From the first renewal on, the lease can run out: watch it.
        this.armLease();
        this.extend()
          .catch(() => undefined) // a failed renewal is retried; the lease timer decides when it is too late
          .finally(() => {
            if (!this.released && !this.lost) this.scheduleRenewal();
          });
      },
      Math.max(1, Math.floor(this.ttlMs / 3)),
    );
    this.renewTimer.unref();
  }

  /** The lease counts from when the renewal was sent, so a slow reply never stretches it. */
  private armLease(): void {
    clearTimeout(this.leaseTimer);
    const ttlMs = this.leaseMs;
    const remaining = this.leaseStartedAt + ttlMs - performance.now();
    this.leaseTimer = setTimeout(
      () =>
        this.lose(
          messages.lockLost(
            this.keys.join(', '),
            `its ${ttlMs} ms lease ran out before a renewal got through`,
          ),
        ),
      Math.max(0, remaining),
    );
    this.leaseTimer.unref();
  }

  private lose(message: string): void {
    if (this.lost) return;
    this.lost = true;
    this.stopWatchdog();
    channels.lockLoss.publish(() => ({ keys: this.keys, reason: message }));
    (this.controller ??= new AbortController()).abort(
      new LockLostError(message, this.keys.join(', ')),
    );
  }
}
