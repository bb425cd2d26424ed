import { Inject, Injectable } from '@nestjs/common';
import { channels } from '../diagnostics/redis-tx.channels.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import { modeName, type HeldPart, type ScriptMode } from '../locks/held-lock.js';
import { leaseEndsAt } from '../locks/lease-validity.js';
import { lockRedisKeys } from '../locks/lock-keys.js';
import type {
  AcquiredPart,
  LockStore,
  LockTerms,
  PartRequest,
  WokenBy,
} from '../locks/lock-store.js';
import { holderToken } from '../locks/admin/holder-token.js';
import type { LockLossReason } from '../errors/lock-lost.error.js';
import type { ForceReleaseResult, LockInspection } from '../locks/admin/lock-inspection.js';
import { inMemoryInspection } from './in-memory-inspection.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import { InMemoryLockTable } from './in-memory-lock-table.js';

/**
 * Locks kept in this process's memory, for unit tests without Redis: the
 * same rules as on Redis (see InMemoryLockTable), the same waiting (woken
 * by a release, or by polling every `locks.pollMs`), and the same lease
 * arithmetic, so LockService behaves as it does on Redis. Locks are shared
 * only within one application instance.
 */
@Injectable()
export class InMemoryLocks implements LockStore {
  private readonly table = new InMemoryLockTable();
  private readonly keyPrefix: string;
  private readonly pollMs: number;

  constructor(@Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions) {
    this.keyPrefix = options.locks.keyPrefix;
    this.pollMs = options.locks.pollMs;
  }

  /** Every mode works; there are no replicas to acknowledge anything. */
  refuseUnsupported(terms: Pick<LockTerms, 'mode' | 'replicaAcks'>, where: string): void {
    if (terms.replicaAcks > 0) {
      throw new InvalidOptionsError('replicaAcks', messages.inMemoryReplicaAcks(where));
    }
  }

  async acquirePart(name: string, request: PartRequest): Promise<AcquiredPart> {
    const token = holderToken(request.mode, request.ttlMs, request.permits);
    const { allNames, deadline } = request;
    const want = { mode: request.mode, ttlMs: request.ttlMs, permits: request.permits };
    const canWait = deadline > performance.now();
    let wokenBy: WokenBy = 'first-try';
    let queued = false;
    const stopKeeping = this.table.keepFor(token);
    try {
      for (;;) {
        const sentAt = performance.now();
        const fence = this.table.acquire(name, token, want, canWait, this.pollMs * 3);
        if (fence > 0) {
          const part: HeldPart = { name, keys: lockRedisKeys(this.keyPrefix, name), token, fence };
          return { part, sentAt, wokenBy };
        }
        queued ||= canWait;
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          if (queued) this.table.leave(name, token);
          throw new LockNotAcquiredError(messages.lockBusy(allNames, request.waitMs), allNames, {
            reason: canWait ? 'timeout' : 'busy',
          });
        }
        if (wokenBy === 'first-try') {
          channels.lockWait.publish(() => ({ keys: allNames, mode: modeName(request.mode) }));
        }
        const cancel = request.cancelForWait();
        const wake = await this.table.wait(token, Math.min(remaining, this.pollMs), cancel);
        if (wake === 'aborted') {
          this.table.leave(name, token);
          const closing = request.closing();
          throw new LockNotAcquiredError(
            closing ? messages.lockShuttingDown : messages.lockWaitAborted(allNames),
            allNames,
            { reason: closing ? 'shutdown' : 'aborted', cause: cancel.reason },
          );
        }
        // Handed over: the next attempt finds it in this token's name and renews its lease.
        wokenBy = wake === 'granted' ? 'release' : wake;
      }
    } finally {
      stopKeeping();
    }
  }

  async extend(part: HeldPart, mode: ScriptMode, ttlMs: number): Promise<boolean> {
    return this.table.extend(part.name, part.token, mode, ttlMs);
  }

  async release(part: HeldPart, mode: ScriptMode): Promise<boolean> {
    return this.table.release(part.name, part.token, mode);
  }

  async isLocked(name: string): Promise<boolean> {
    return this.table.isLocked(name);
  }

  leaseEndsAt(sentAt: number, ttlMs: number): number {
    return leaseEndsAt(sentAt, ttlMs);
  }

  /** Nothing to watch: a loss is found by renewal or by the lease running out, as on Redis. */
  held(): void {}

  async inspect(name: string): Promise<LockInspection> {
    return inMemoryInspection(name, this.table);
  }

  async forceRelease(name: string): Promise<ForceReleaseResult> {
    const { evicted, fence } = this.table.forceRelease(name);
    return { key: name, evicted, fencingToken: fence };
  }

  async lossReason(part: HeldPart): Promise<LockLossReason> {
    return this.table.wasEvicted(part.name, part.token) ? 'force-released' : 'lease-expired';
  }
}
