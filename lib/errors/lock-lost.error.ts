import { RedisTxError } from './redis-tx.error.js';

/**
 * Why a held lock was lost.
 *
 * - `lease-expired`: its lease ended before a renewal got through (Redis
 *   unreachable, the process stalled), or a renewal found it gone.
 * - `force-released`: `LockService.forceRelease()` freed it, from this
 *   process or another one; its fencing token is stale.
 * - `handed-over`: `lock.toHandle()` passed it on; another process adopts it.
 * - `expired-by-test`: `expireLock()` of `nestjs-redis-tx/testing` ended it.
 */
export type LockLossReason = 'lease-expired' | 'force-released' | 'handed-over' | 'expired-by-test';

/**
 * The lease ended while the holder still ran (renewal failed, another holder
 * took the key after it expired, or it was force-released); `reason` says
 * which. `lock.signal` aborts with it.
 */
export class LockLostError extends RedisTxError {
  readonly reason: LockLossReason;

  constructor(
    message: string,
    readonly key: string,
    options?: { cause?: unknown; reason?: LockLossReason },
  ) {
    super(message, options);
    this.reason = options?.reason ?? 'lease-expired';
  }
}
