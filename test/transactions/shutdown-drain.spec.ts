import 'reflect-metadata';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  RedisTx,
  ShuttingDownError,
  Transactional,
  TransactionAbortedError,
  TransactionOutcomeUnknownError,
} from '../../lib/index.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';

/** A promise and the function that resolves it: the test decides when a method may go on. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

@Injectable()
class Orders {
  constructor(readonly redis: RedisTx) {}

  /** Queues its writes, then waits for `until` before returning (and so before EXEC). */
  @Transactional()
  async place(id: string, started: () => void, until: Promise<void>): Promise<void> {
    this.redis.multi.sadd('orders', id).incr('orders:count');
    started();
    await until;
  }

  @Transactional({ watch: ['orders:count'] })
  async count(id: string): Promise<void> {
    const n = Number(await this.redis.client.get('orders:count'));
    this.redis.multi.sadd('orders', id).set('orders:count', String(n + 1));
  }
}

describe('transactions at app.close()', () => {
  const redis = useRedisServer();
  let observer: Redis;

  beforeAll(() => {
    observer = new Redis(redis.server.url);
  });
  redis.beforeStop(() => observer.quit());
  beforeEach(() => observer.flushall());

  const start = () =>
    createTestApp({
      options: { connection: redis.server.url, shutdownTimeoutMs: 30_000 },
      providers: [Orders],
    });

  it('lets a transaction in flight finish and commit before the connections close', async () => {
    const app = await start();
    const { opened, open } = gate();
    const started = gate();
    const placing = app.get(Orders).place('o1', started.open, opened);
    await started.opened;
    let closed = false;
    const closing = app.close().then(() => (closed = true));
    // The transaction holds the close up: let the shutdown hooks run, then check.
    for (let i = 0; i < 20; i++) await nextTurn();
    expect(closed).toBe(false);
    open();
    await placing;
    await closing;
    expect(await observer.smembers('orders')).toEqual(['o1']);
    expect(await observer.get('orders:count')).toBe('1');
  });

  it('refuses a transaction started once shutdown is under way with ShuttingDownError, nothing sent', async () => {
    const app = await start();
    const { opened, open } = gate();
    const started = gate();
    const placing = app.get(Orders).place('first', started.open, opened);
    await started.opened;
    const closing = app.close();
    // Wait until the shutdown hooks are waiting for the first transaction.
    for (let i = 0; i < 20; i++) await nextTurn();
    const late = await app
      .get(Orders)
      .count('late')
      .catch((e: unknown) => e);
    open();
    await placing;
    await closing;
    expect(late).toBeInstanceOf(ShuttingDownError);
    expect((late as Error).message).toMatch(/Orders\.count: the application is shutting down/);
    expect(await observer.smembers('orders')).toEqual(['first']);
  });

  it('a transaction started moments after close began commits or is refused, never "outcome unknown"', async () => {
    for (let delayTurns = 0; delayTurns < 10; delayTurns++) {
      await observer.flushall();
      const app = await start();
      const closing = app.close();
      for (let i = 0; i < delayTurns; i++) await nextTurn();
      const outcome = await app
        .get(Orders)
        .count(`o${delayTurns}`)
        .then(
          () => 'committed',
          (e: unknown) => e,
        );
      await closing;
      if (outcome === 'committed') {
        expect(await observer.get('orders:count')).toBe('1');
      } else {
        expect(outcome).not.toBeInstanceOf(TransactionOutcomeUnknownError);
        expect(outcome).toBeInstanceOf(ShuttingDownError);
        expect(await observer.exists('orders', 'orders:count')).toBe(0);
      }
    }
  });

  it('stops waiting after shutdownTimeoutMs: a method still running then fails unsent', async () => {
    const app = await createTestApp({
      options: { connection: redis.server.url, shutdownTimeoutMs: 0 },
      providers: [Orders],
    });
    const { opened, open } = gate();
    const started = gate();
    const placing = app
      .get(Orders)
      .place('slow', started.open, opened)
      .catch((e: unknown) => e);
    await started.opened;
    await app.close();
    open();
    const error = await placing;
    expect(error).toBeInstanceOf(TransactionAbortedError);
    expect(await observer.exists('orders', 'orders:count')).toBe(0);
  });
});
