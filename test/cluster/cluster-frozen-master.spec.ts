import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import {
  LockNotAcquiredError,
  LockService,
  RedisTx,
  RedisTxError,
  Transactional,
  TransactionAbortedError,
  TransactionConflictError,
} from '../../lib/index.js';
import { useRedisCluster } from '../support/cluster.js';
import { createTestApp } from '../support/nest-app.js';

const key = '{frozen}:counter';
const lockName = 'frozen';
const nodeTimeoutMs = 2_000;
const commandTimeoutMs = 1_000;
const readyTimeoutMs = 1_000;
const backoffMaxMs = 50;
const retries = 1;

@Injectable()
class Counter {
  constructor(readonly redis: RedisTx) {}

  @Transactional({ watch: [key], retries })
  async increment() {
    const value = Number(await this.redis.client.get(key));
    this.redis.multi.set(key, value + 1);
  }
}

/**
 * How long one call may take while its master is silent: each attempt meets
 * the silent node once (noticed within 1.25 deadlines, the guard's sweep) and
 * may then wait for a fresh connection that never becomes ready; attempts
 * are 1 + retries, with a backoff between them.
 */
const perAttemptMs = commandTimeoutMs * 1.25 + readyTimeoutMs;
const settleBoundMs = (1 + retries) * perAttemptMs + retries * backoffMaxMs;

/** The time `call` takes to settle, and how it settled. */
async function timed(call: () => Promise<unknown>): Promise<{ ms: number; error?: unknown }> {
  const started = performance.now();
  try {
    await call();
    return { ms: performance.now() - started };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

describe('a frozen Cluster master (SIGSTOP past the node timeout)', () => {
  const bed = useRedisCluster({ nodeTimeoutMs });
  let app: INestApplication;
  const locks = () => app.get(LockService);
  const counter = () => app.get(Counter);

  beforeAll(async () => {
    app = await createTestApp({
      options: {
        connection: { cluster: bed.cluster.startupNodes },
        commandTimeoutMs,
        transactions: { readyTimeoutMs, backoff: { initialMs: 5, maxMs: backoffMaxMs } },
        locks: { ttlMs: 10_000 },
      },
      providers: [Counter],
    });
  });
  bed.beforeStop(() => app?.close());

  it('settles calls on its slots within the configured bound, typed, and serves them from the promoted replica without SIGCONT', async () => {
    const master = await bed.cluster.masterForKey(key);
    // Connections to the master exist before it freezes, as in a running application.
    await counter().increment();
    await (await locks().acquire(lockName)).release();

    master.pause();
    try {
      const [transaction, lock] = await Promise.all([
        timed(() => counter().increment()),
        timed(() => locks().acquire(lockName, { waitMs: 0 })),
      ]);
      expect(transaction.error).toBeInstanceOf(RedisTxError);
      expect(
        transaction.error instanceof TransactionConflictError ||
          transaction.error instanceof TransactionAbortedError,
      ).toBe(true);
      // It says what happened: a lost node, not a changed key.
      expect((transaction.error as Error).message).not.toContain('a watched key changed on each');
      expect((transaction.error as Error).message).toMatch(/WATCH was lost|not sent/);
      expect(transaction.ms).toBeLessThan(settleBoundMs);
      expect(lock.error).toBeInstanceOf(LockNotAcquiredError);
      expect(['connection', 'outcome-unknown']).toContain(
        (lock.error as LockNotAcquiredError).reason,
      );
      expect(lock.ms).toBeLessThan(settleBoundMs);

      // The replica takes over while the old master is still frozen.
      await bed.cluster.settled();
      const promoted = await bed.cluster.masterForKey(key);
      expect(promoted.port).not.toBe(master.port);
      const promotedAt = performance.now();
      // Calls succeed against it without SIGCONT, after at most a few failed ones.
      const recovery = await firstSuccess(async () => {
        await counter().increment();
        await (await locks().acquire(lockName, { waitMs: 0 })).release();
      });
      const recoveryMs = performance.now() - promotedAt;
      console.log(
        `frozen master: transaction settled in ${Math.round(transaction.ms)} ms, ` +
          `lock in ${Math.round(lock.ms)} ms (bound ${settleBoundMs} ms); ` +
          `served by the promoted replica ${Math.round(recoveryMs)} ms after promotion ` +
          `(${recovery.failures.length} failed call(s) first: ${recovery.failures.map((f) => (f as Error).name).join(', ')})`,
      );
      for (const failure of recovery.failures) expect(failure).toBeInstanceOf(RedisTxError);
      expect(recoveryMs).toBeLessThan(settleBoundMs);
    } finally {
      master.resume();
    }
    // Back as a replica of the promoted node; nothing of the test is left frozen.
    await bed.cluster.settled();
  }, 60_000);

  /** Runs `call` until it succeeds, at most for the settle bound; the failures seen on the way. */
  async function firstSuccess(call: () => Promise<void>): Promise<{ failures: unknown[] }> {
    const failures: unknown[] = [];
    const deadline = performance.now() + settleBoundMs;
    for (;;) {
      try {
        await call();
        return { failures };
      } catch (error) {
        failures.push(error);
        if (performance.now() > deadline) throw error;
      }
    }
  }
});
