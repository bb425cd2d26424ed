import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  channelNames,
  RedisTx,
  RedisTxError,
  Transactional,
  TransactionAbortedError,
  TransactionOutcomeUnknownError,
} from '../../lib/index.js';
import type { FaultProxy } from '../../tools/fault-proxy.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

@Injectable()
class Ledger {
  runs = 0;
  constructor(readonly redis: RedisTx) {}

  @Transactional()
  async post(id: string) {
    this.runs++;
    this.redis.multi.incr('ledger:count').sadd('ledger:ids', id);
  }

  @Transactional({ watch: ['ledger:balance'], retries: 5 })
  async deposit(amount: number) {
    this.runs++;
    const balance = Number(await this.redis.client.get('ledger:balance'));
    this.redis.multi.set('ledger:balance', String(balance + amount));
  }

  /** On its first run, the network drops between the read and EXEC, and someone else writes the key meanwhile. */
  @Transactional({ watch: ['ledger:watched'], retries: 5 })
  async incrementAcrossCut(proxy: FaultProxy, rival: Redis) {
    this.runs++;
    const value = Number(await this.redis.client.get('ledger:watched'));
    if (this.runs === 1) {
      const reconnected = once(this.redis.client, 'ready');
      proxy.cutAll();
      await reconnected;
      // The WATCH went with the old connection: an EXEC now would overwrite this.
      await rival.incr('ledger:watched');
    }
    this.redis.multi.set('ledger:watched', String(value + 1));
  }
}

/**
 * Polls until the observer sees `expected`, or fails after `timeoutMs`. Only
 * where no event exists: Redis does not announce that it has run what a cut
 * connection sent it.
 */
async function eventuallyEquals(
  read: () => Promise<unknown>,
  expected: unknown,
  timeoutMs = 2_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await read()) === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  expect(await read()).toBe(expected);
}

describe('transactions through a faulty network', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let app: INestApplication;
  let observer: Redis;
  const ledger = () => app.get(Ledger);
  let execs: number[];
  let stopCounting: () => void;

  beforeAll(async () => {
    observer = new Redis(redis.server.url);
    app = await createTestApp({ options: { connection: net.proxy.url }, providers: [Ledger] });
  });
  redis.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });
  beforeEach(async () => {
    await observer.flushall();
    ledger().runs = 0;
    execs = [];
    stopCounting = net.proxy.onCommand((name, connection) => {
      if (name === 'EXEC') execs.push(connection);
    });
  });
  afterEach(() => stopCounting());

  it('a cut just before EXEC reaches Redis: outcome unknown, nothing applied, and the next transaction succeeds', async () => {
    const cut = net.proxy.faultOn('EXEC', 'cut-before');
    const error = await ledger()
      .post('first')
      .catch((e: unknown) => e);
    await cut;
    // The client wrote EXEC, so it cannot know whether Redis got it: it must not claim either way.
    expect(error).toBeInstanceOf(TransactionOutcomeUnknownError);
    expect(error).toBeInstanceOf(RedisTxError);
    expect((error as Error).message).toMatch(
      /Ledger\.post: the connection to Redis failed after EXEC was sent and before its reply; Redis may or may not have applied the transaction\. It was not retried: check the data/,
    );
    expect(await observer.exists('ledger:count', 'ledger:ids')).toBe(0);

    // The module reconnects by itself; the next transaction waits for it.
    await ledger().post('second');
    expect(await observer.get('ledger:count')).toBe('1');
    expect(await observer.smembers('ledger:ids')).toEqual(['second']);
    expect(ledger().runs).toBe(2);
  });

  it('a lost EXEC reply: outcome unknown, applied exactly once, never resent', async () => {
    const cut = net.proxy.faultOn('EXEC', 'cut-after-send');
    const error = await ledger()
      .post('lost-reply')
      .catch((e: unknown) => e);
    await cut;
    expect(error).toBeInstanceOf(TransactionOutcomeUnknownError);
    await eventuallyEquals(() => observer.get('ledger:count'), '1');
    expect(execs).toHaveLength(1);
    expect(ledger().runs).toBe(1);

    // A resend after the reconnect would show up here as a third increment.
    await ledger().post('after');
    expect(await observer.get('ledger:count')).toBe('2');
    expect(execs).toHaveLength(2);
  });

  it('a lost EXEC reply of a WATCH transaction: outcome unknown, the method is not run again', async () => {
    await observer.set('ledger:balance', '100');
    const cut = net.proxy.faultOn('EXEC', 'cut-after-send');
    const error = await ledger()
      .deposit(10)
      .catch((e: unknown) => e);
    await cut;
    expect(error).toBeInstanceOf(TransactionOutcomeUnknownError);
    expect(ledger().runs).toBe(1);
    expect(execs).toHaveLength(1);
    await eventuallyEquals(() => observer.get('ledger:balance'), '110');

    await ledger().deposit(5);
    expect(await observer.get('ledger:balance')).toBe('115');
    expect(ledger().runs).toBe(2);
    expect(execs).toHaveLength(2);
  });

  it('a WATCH lost to a reconnect between the read and EXEC is a conflict: the method runs again on fresh data', async () => {
    const rival = new Redis(redis.server.url);
    const conflicts: unknown[] = [];
    const onConflict = (event: unknown) => conflicts.push(event);
    subscribe(channelNames.transactionConflict, onConflict);
    try {
      await ledger().incrementAcrossCut(net.proxy, rival);
    } finally {
      unsubscribe(channelNames.transactionConflict, onConflict);
      await rival.quit();
    }
    // The rival's increment and ours: a success on the lost WATCH would give 1.
    expect(await observer.get('ledger:watched')).toBe('2');
    expect(ledger().runs).toBe(2);
    expect(conflicts).toHaveLength(1);
    // The first run's EXEC was never sent: the lost WATCH was caught before it.
    expect(execs).toHaveLength(1);
  });
});

describe('transactions refused for lack of memory', () => {
  useUnhandledRejections();
  const redis = useRedisServer({ args: ['--maxmemory-policy', 'noeviction'] });
  let app: INestApplication;
  let observer: Redis;

  beforeAll(async () => {
    observer = new Redis(redis.server.url);
    app = await createTestApp({ options: { connection: redis.server.url }, providers: [Ledger] });
  });
  redis.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });

  it('OOM while queueing aborts the whole transaction (TransactionAbortedError with the causes), nothing applied', async () => {
    // Well over the limit, so that no passing buffer brings Redis back under it:
    // every write that needs memory is refused from then on.
    await observer.mset(
      Object.fromEntries(
        Array.from({ length: 16 }, (_, i) => [`fill:${i}`, 'x'.repeat(64 * 1024)]),
      ),
    );
    const used = Number(/used_memory:(\d+)/.exec(await observer.info('memory'))![1]);
    await observer.config('SET', 'maxmemory', String(used - 512 * 1024));
    await expect(observer.set('probe', '1')).rejects.toThrow(/^OOM/);

    const error = await app
      .get(Ledger)
      .post('no-room')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransactionAbortedError);
    const aborted = error as TransactionAbortedError;
    expect(aborted.causes.length).toBeGreaterThan(0);
    for (const cause of aborted.causes) expect(cause.message).toMatch(/^OOM command not allowed/);
    expect(aborted.message).toMatch(
      /Ledger\.post: Redis rejected the transaction.*nothing was applied.*OOM/,
    );
    expect(await observer.exists('ledger:count', 'ledger:ids')).toBe(0);

    await observer.config('SET', 'maxmemory', '0');
    await observer.flushall();
    await app.get(Ledger).post('room-again');
    expect(await observer.get('ledger:count')).toBe('1');
  });
});
