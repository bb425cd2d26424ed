import { channels } from '../diagnostics/redis-tx.channels.js';
import { LockLostError } from '../errors/lock-lost.error.js';
import { messages } from '../redis-tx.messages.js';
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
 * stalled). No timer outlives the lock.
 */
export class HeldLock implements Lock {
  readonly fencingTokens: ReadonlyMap<string, number>;
  private readonly controller = new AbortController();
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
    this.fencingTokens = new Map(parts.map((p) => [p.name, p.fence]));
    this.armLease(leaseStartedAt, ttlMs);
    this.scheduleRenewal();
  }

  get keys(): readonly string[] {
    return this.parts.map((p) => p.name);
  }

  get fencingToken(): number {
    return this.parts[0]!.fence;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
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
    const results = await Promise.all(
      this.parts.map((p) => this.backend.release(p, this.scriptMode)),
    );
    const released = results.every(Boolean);
    channels.lockRelease.publish(() => ({
      keys: this.keys,
      heldMs: performance.now() - this.acquiredAt,
      released,
    }));
    return released;
  }

  async extend(ttlMs = this.ttlMs): Promise<boolean> {
    if (this.released || this.signal.aborted) return false;
    const started = performance.now();
    const results = await Promise.all(
      this.parts.map((p) => this.backend.extend(p, this.scriptMode, ttlMs)),
    );
    // Released or lost while the renewal was on its way: arm nothing more.
    if (this.released || this.signal.aborted) return false;
    if (!results.every(Boolean)) {
      this.lose(
        messages.lockLost(
          this.keys.join(', '),
          'its lease had ended and another holder may have taken it',
        ),
      );
      return false;
    }
    this.armLease(started, ttlMs);
    channels.lockRenew.publish(() => ({
      keys: this.keys,
      durationMs: performance.now() - started,
    }));
    return true;
  }

  private stopWatchdog(): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.leaseTimer);
  }

  private scheduleRenewal(): void {
    this.renewTimer = setTimeout(
      () => {
        this.extend()
          .catch(() => undefined) // a failed renewal is retried; the lease timer decides when it is too late
          .finally(() => {
            if (!this.released && !this.signal.aborted) this.scheduleRenewal();
          });
      },
      Math.max(1, Math.floor(this.ttlMs / 3)),
    );
    this.renewTimer.unref();
  }

  /** The lease counts from when the renewal was sent, so a slow reply never stretches it. */
  private armLease(startedAt: number, ttlMs: number): void {
    clearTimeout(this.leaseTimer);
    const remaining = startedAt + ttlMs - performance.now();
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
    if (this.controller.signal.aborted) return;
    this.stopWatchdog();
    channels.lockLoss.publish(() => ({ keys: this.keys, reason: message }));
    this.controller.abort(new LockLostError(message, this.keys.join(', ')));
  }
}
