import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  LockNotAcquiredError,
  LockService,
  RedisTx,
  RedisTxError,
  TransactionOutcomeUnknownError,
  type Lock,
} from '../../lib/index.js';
import type { RedisServer } from '../../tools/redis-server.js';
import { createTestApp } from '../support/nest-app.js';
import { useReplicatedRedis } from '../support/sentinel.js';

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function outcomeOf<T>(work: Promise<T>): Promise<Outcome<T>> {
  return work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

async function readOn<T>(server: RedisServer, read: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(server.url);
  try {
    return await read(client);
  } finally {
    client.disconnect();
  }
}

/**
 * A master frozen (SIGSTOP) past Sentinel's switch, then resumed: the work
 * the application had sent it runs there after all and is answered, but the
 * old master is about to become a replica of the new one and lose it. None
 * of those late answers may be taken for a success.
 */
describe('Sentinel: nothing the old master answers after the switch is believed', () => {
  const bed = useReplicatedRedis({ replicas: 1, sentinels: 3, downAfterMs: 1_000 });
  let app: INestApplication;

  const start = () =>
    createTestApp({
      options: {
        connection: bed.redis.sentinelOptions(),
        // Far beyond the freeze: only the switch itself may end the waits.
        commandTimeoutMs: 60_000,
        transactions: { readyTimeoutMs: 20_000 },
        locks: { ttlMs: 60_000 },
      },
    });

  beforeAll(async () => {
    app = await start();
  });
  bed.beforeStop(() => app?.close());

  it.each([500, 1_000, 3_000])(
    'resumed %i ms after the switch: no transaction reported committed and then lost, no fencing token given twice',
    async (resumeAfterMs) => {
      const tx = app.get(RedisTx);
      const locks = app.get(LockService);
      const key = `stale:${resumeAfterMs}`;
      const old = await bed.redis.master();
      // The connections are up and following the master before it freezes.
      await tx.run(() => void tx.multi.set(`${key}:warm`, '1'));
      await (await locks.acquire(`${key}:warm`)).release();

      old.pause();
      const committed = outcomeOf(tx.run(() => void tx.multi.set(key, 'from-before-the-switch')));
      const held = outcomeOf(locks.acquire(key, { waitMs: 0 }));
      const next = await bed.redis.switchedFrom(old, 30_000);
      // Another instance, started after the switch, takes the lock on the new master.
      const other = await start();
      const rival = await other.get(LockService).acquire(key, { waitMs: 20_000 });
      await sleep(resumeAfterMs);
      old.resume();

      const [transaction, lock] = await Promise.all([committed, held]);
      const master = await bed.redis.settled();
      expect(master).toBe(next);
      if (transaction.ok) {
        // Reported committed: then it must be on the master that survived.
        expect(await readOn(master, (c) => c.get(key))).toBe('from-before-the-switch');
      } else {
        expect(transaction.error).toBeInstanceOf(TransactionOutcomeUnknownError);
      }
      if (lock.ok) {
        expect(lock.value.fencingToken).not.toBe(rival.fencingToken);
        await (lock.value as Lock).release();
      } else {
        expect(lock.error).toBeInstanceOf(RedisTxError);
        expect(lock.error).toBeInstanceOf(LockNotAcquiredError);
      }
      await rival.release();
      await other.close();
    },
    90_000,
  );
});
