import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Locked, LockLostError, RedisTx, Transactional } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

const TTL_MS = 200;

/** Runs nothing else until `performance.now()` passes `until`: a process paused, as seen from inside. */
function blockUntil(until: number): void {
  while (performance.now() < until);
}

@Injectable()
class Payments {
  constructor(readonly redis: RedisTx) {}

  /** Queues its write, then stalls past its lock's lease before returning (and so before EXEC). */
  @Locked('payments:o1', { ttlMs: TTL_MS })
  @Transactional()
  async pay(): Promise<void> {
    this.redis.multi.set('payments:o1', 'paid');
    blockUntil(performance.now() + 2 * TTL_MS);
  }
}

describe('EXEC under @Locked', () => {
  const bed = useAppWithRedis({ providers: [Payments] });

  it('is not sent once the lock may have expired: LockLostError, and nothing applied', async () => {
    const error = await bed.app
      .get(Payments)
      .pay()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockLostError);
    expect(await bed.observer.exists('payments:o1')).toBe(0);
  });
});
