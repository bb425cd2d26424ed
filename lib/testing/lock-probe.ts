import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  channelNames,
  type LockAcquireEvent,
  type LockLossEvent,
  type LockReleaseEvent,
} from '../diagnostics/redis-tx.channels.js';
import { messages } from '../redis-tx.messages.js';
import { LockExpectationError } from './errors/lock-expectation.error.js';

type Listener = (message: unknown) => void;

/**
 * Records the lock events of this process (`node:diagnostics_channel`, every
 * application in it) from `start()` to `stop()`, and tells which keys are
 * held now: acquired and not yet released or lost. Re-entering a lock the
 * call chain holds is not a new acquisition, and does not count twice.
 *
 * ```ts
 * const probe = LockProbe.start();
 * repository.save = jest.fn(async () => probe.assertHeld('order:42'));
 * await orders.pay('42');
 * probe.stop();
 * ```
 */
export class LockProbe {
  /** Every acquisition seen, in order. */
  readonly acquisitions: LockAcquireEvent[] = [];
  /** Every release seen, in order. */
  readonly releases: LockReleaseEvent[] = [];
  /** Every loss seen, in order. */
  readonly losses: LockLossEvent[] = [];
  private readonly holders = new Map<string, number>();
  /** Keys lost and not yet released: their release does not end another hold. */
  private readonly lostUnreleased = new Map<string, number>();
  private readonly listeners: [string, Listener][];
  private stopped = false;

  private constructor() {
    this.listeners = [
      [channelNames.lockAcquire, (m) => this.onAcquire(m as LockAcquireEvent)],
      [channelNames.lockRelease, (m) => this.onRelease(m as LockReleaseEvent)],
      [channelNames.lockLoss, (m) => this.onLoss(m as LockLossEvent)],
    ];
    for (const [name, listener] of this.listeners) subscribe(name, listener);
  }

  /** Starts recording. Call `stop()` when done (e.g. in `afterEach`). */
  static start(): LockProbe {
    return new LockProbe();
  }

  /** Whether a lock on `key` is held by this process now, as far as the events since `start()` tell. */
  isHeld(key: string): boolean {
    return (this.holders.get(key) ?? 0) > 0;
  }

  /** Throws LockExpectationError unless a lock on `key` is held now; call it from code that must run under the lock. */
  assertHeld(key: string): void {
    if (!this.isHeld(key)) throw new LockExpectationError(messages.lockNotHeldNow(key), key);
  }

  /** Whether a lock on `key` was acquired since `start()`. */
  wasAcquired(key: string): boolean {
    return this.acquisitions.some((event) => event.keys.includes(key));
  }

  /** Stops recording; what was recorded stays readable. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const [name, listener] of this.listeners) unsubscribe(name, listener);
  }

  private onAcquire(event: LockAcquireEvent): void {
    this.acquisitions.push(event);
    for (const key of event.keys) this.holders.set(key, (this.holders.get(key) ?? 0) + 1);
  }

  private onLoss(event: LockLossEvent): void {
    this.losses.push(event);
    for (const key of event.keys) {
      if (!this.isHeld(key)) continue;
      this.holders.set(key, this.holders.get(key)! - 1);
      this.lostUnreleased.set(key, (this.lostUnreleased.get(key) ?? 0) + 1);
    }
  }

  private onRelease(event: LockReleaseEvent): void {
    this.releases.push(event);
    for (const key of event.keys) {
      const lost = this.lostUnreleased.get(key) ?? 0;
      if (lost > 0) this.lostUnreleased.set(key, lost - 1);
      else if (this.isHeld(key)) this.holders.set(key, this.holders.get(key)! - 1);
    }
  }
}

/**
 * Runs `fn` and resolves with its result, or throws LockExpectationError
 * unless a lock on `key` was acquired while it ran (by `@Locked`,
 * `LockService.using()`, `acquire()`…). An error from `fn` is rethrown as it is.
 *
 * ```ts
 * await expectLockedDuring('order:42', () => orders.pay('42'));
 * ```
 */
export async function expectLockedDuring<T>(key: string, fn: () => T | Promise<T>): Promise<T> {
  const probe = LockProbe.start();
  try {
    const result = await fn();
    if (!probe.wasAcquired(key)) {
      const seen = [...new Set(probe.acquisitions.flatMap((event) => event.keys))];
      throw new LockExpectationError(messages.lockNotHeldDuring(key, seen), key);
    }
    return result;
  } finally {
    probe.stop();
  }
}
