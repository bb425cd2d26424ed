import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  channelNames,
  LockService,
  REDIS_CLIENT,
  RedisTx,
  RedisTxError,
  Transactional,
  TransactionAbortedError,
  type LockAcquireEvent,
} from '../../lib/index.js';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { lockRedisKeys } from '../../lib/locks/lock-keys.js';
import { RedisServer } from '../../tools/redis-server.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';
import { useReplicatedRedis } from '../support/sentinel.js';
import { Slack } from '../support/timing.js';

const READY_TIMEOUT_MS = 3_000;
const WAIT_MS = 2_000;
const TTL_MS = 3_000;
/** Longer than any wait: a waiter is only ever woken by a release message. */
const POLL_MS = 60_000;

@Injectable()
class Counter {
  constructor(readonly redis: RedisTx) {}

  @Transactional({ watch: (key: string) => [key], retries: 50 })
  async bump(key: string): Promise<void> {
    const value = await this.redis.client.get(key);
    this.redis.multi.set(key, String(Number(value) + 1));
  }
}

/** Runs `fn` with a direct client to `server`, closed afterwards whatever happens. */
async function onServer<T>(server: RedisServer, fn: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(server.url);
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

/** Lock keys left on `server`, leaving out the fencing counter, which is meant to stay. */
function lockKeysOn(server: RedisServer): Promise<string[]> {
  return onServer(server, async (client) =>
    (await client.keys('lock:*')).filter((key) => key !== 'lock:fence'),
  );
}

describe('RedisTxModule through Sentinel', () => {
  const bed = useReplicatedRedis({ replicas: 1, sentinels: 3 });
  let app: INestApplication;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    app = await createTestApp({
      options: {
        connection: bed.redis.sentinelOptions(),
        transactions: { readyTimeoutMs: READY_TIMEOUT_MS, watchConnections: 4 },
        // A poll longer than any wait: a waiter is only ever woken by a release message.
        locks: { ttlMs: TTL_MS, waitMs: WAIT_MS, pollMs: POLL_MS },
      },
      providers: [Counter],
    });
  });
  bed.beforeStop(async () => {
    await app?.close();
    process.off('unhandledRejection', onUnhandled);
  });
  afterEach(() => expect(unhandled).toEqual([]));

  const locks = () => app.get(LockService);
  const tx = () => app.get(RedisTx);

  it('runs locks, transactions and WATCH transactions on the master Sentinel names', async () => {
    const master = await bed.redis.master();
    const lock = await locks().acquire('through-sentinel');
    try {
      expect(
        await onServer(master, (c) => c.exists(lockRedisKeys('lock:', 'through-sentinel').writer)),
      ).toBe(1);
    } finally {
      await lock.release();
    }
    await tx().run(() => void tx().multi.set('tx:plain', 'yes').incr('tx:counter'));
    await app.get(Counter).bump('tx:watched');
    expect(await onServer(master, (c) => c.mget('tx:plain', 'tx:counter', 'tx:watched'))).toEqual([
      'yes',
      '1',
      '1',
    ]);
    expect(await lockKeysOn(master)).toEqual([]);
  });

  it('survives a failover: in-flight work succeeds or fails typed, and then everything runs on the new master', async () => {
    const previous = await bed.redis.master();
    const workers = 4;
    const wantedAfterFailover = 5;
    const untyped: unknown[] = [];
    const typed = new Set<string>();
    let longestMs = 0;
    let switched = false;
    let stop = false;
    const successesAfter = Array<number>(workers).fill(0);
    let allCaughtUp!: () => void;
    const caughtUp = new Promise<void>((resolve) => (allCaughtUp = resolve));

    const operations = [
      (worker: number) => locks().using(`worker:${worker}`, (lock) => lock.fencingToken),
      () => tx().run(() => void tx().multi.incr('loop:plain')),
      (worker: number) => app.get(Counter).bump(`loop:watched:${worker}`),
      () => locks().using('loop:shared', () => undefined, { waitMs: WAIT_MS }),
    ];
    // Bounded by count and by time; each worker stops once every worker has
    // done its share after the failover.
    const deadline = performance.now() + 40_000;
    const runWorker = async (worker: number) => {
      for (let i = 0; i < 5_000 && !stop && performance.now() < deadline; i++) {
        const started = performance.now();
        const after = switched;
        try {
          await operations[i % operations.length]!(worker);
          if (after && ++successesAfter[worker]! >= wantedAfterFailover) {
            if (successesAfter.every((n) => n >= wantedAfterFailover)) allCaughtUp();
          }
        } catch (error) {
          if (error instanceof RedisTxError) typed.add(error.name);
          else untyped.push(error);
        }
        longestMs = Math.max(longestMs, performance.now() - started);
        // Pacing only, so the loop leaves the 2 cores to the servers.
        await sleep(5);
      }
    };
    const slack = Slack.start();
    const running = Promise.all(Array.from({ length: workers }, (_, w) => runWorker(w)));

    const next = await bed.redis.failover();
    switched = true;
    await Promise.race([caughtUp, running]);
    stop = true;
    await running;

    expect(next).not.toBe(previous);
    expect(untyped).toEqual([]);
    expect(successesAfter.every((n) => n >= wantedAfterFailover)).toBe(true);
    // No operation outlived its own bounds: a wait, a reconnect, and a lost reply's detection.
    // (plus how late this process ran meanwhile, a loaded machine's share).
    slack.stop();
    expect(longestMs).toBeLessThan(WAIT_MS + READY_TIMEOUT_MS + 2_000 + slack.ms);
    for (const name of typed) {
      expect([
        'LockNotAcquiredError',
        'RedisTxError',
        'TransactionAbortedError',
        'TransactionOutcomeUnknownError',
        'TransactionConflictError',
      ]).toContain(name);
    }

    // Every module connection now talks to the new master.
    const shared = app.get<Redis>(REDIS_CLIENT);
    await shared.set('after:shared', '1');
    const lock = await locks().acquire('after:lock');
    expect(await onServer(next, (c) => c.exists(lockRedisKeys('lock:', 'after:lock').writer))).toBe(
      1,
    );
    await tx().run(() => void tx().multi.set('after:plain', '1'));
    await app.get(Counter).bump('after:watched');
    expect(
      await onServer(next, (c) => c.mget('after:shared', 'after:plain', 'after:watched')),
    ).toEqual(['1', '1', '1']);
    expect(((await onServer(next, (c) => c.call('ROLE'))) as unknown[])[0]).toBe('master');

    // The subscriber followed too: with polling out of reach, only the
    // hand-off message can let this waiter in before its wait runs out.
    const acquired: LockAcquireEvent[] = [];
    const onAcquire = (event: unknown) => acquired.push(event as LockAcquireEvent);
    subscribe(channelNames.lockAcquire, onAcquire);
    try {
      // Announced once it stands in line and listens: released sooner, a busy
      // machine would let it find the lock in its name on its next try instead.
      const waiting = nextEvent(channelNames.lockWait);
      const waiter = locks().acquire('after:lock', { waitMs: WAIT_MS });
      await waiting;
      await waitForQueue(next, 'after:lock');
      await lock.release();
      await (await waiter).release();
    } finally {
      unsubscribe(channelNames.lockAcquire, onAcquire);
    }
    expect(acquired.at(-1)).toMatchObject({ keys: ['after:lock'], wokenBy: 'release' });

    await expectNoLockKeysLeft(next);
  });

  it('turns READONLY from a demoted master into typed errors, reconnects, and recovers', async () => {
    const master = await bed.redis.master();
    const connections = app.get(RedisConnections);
    const elsewhere = await RedisServer.start();
    /** Demotes the master the way no Sentinel announces and no client kill follows, runs `fn`, and undoes it. */
    const whileDemoted = async (fn: () => Promise<void>) => {
      // Up before the demotion, so the command meets READONLY rather than a reconnect.
      await recoverWithin(10_000, () => tx().run(() => void tx().multi.set('up', '1')));
      await onServer(master, (c) => c.replicaof(elsewhere.host, elsewhere.port));
      try {
        await fn();
      } finally {
        await onServer(master, (c) => c.replicaof('NO', 'ONE'));
      }
    };
    try {
      await whileDemoted(async () => {
        const dropped = once(connections.transactions.redis, 'close');
        const error = await tx()
          .run(() => void tx().multi.set('demoted', '1'))
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(TransactionAbortedError);
        expect((error as TransactionAbortedError).causes[0]?.message).toMatch(/^READONLY/);
        // READONLY made the connection drop, so that it asks Sentinel again.
        await dropped;
      });
      await whileDemoted(async () => {
        const error = await locks()
          .acquire('demoted', { waitMs: 0 })
          .catch((e: unknown) => e);
        // Refused by the replica (LockNotAcquiredError), or its connection
        // reconnecting meanwhile (RedisTxError): typed either way.
        expect(error).toBeInstanceOf(RedisTxError);
      });
      await recoverWithin(10_000, () => tx().run(() => void tx().multi.set('recovered', '1')));
      expect(await onServer(master, (c) => c.get('recovered'))).toBe('1');
      await expectNoLockKeysLeft(master);
    } finally {
      await elsewhere.stop();
    }
  });

  /** Until the waiter stands in line on `server`: no event tells when its script has run. */
  async function waitForQueue(server: RedisServer, name: string): Promise<void> {
    const deadline = performance.now() + WAIT_MS;
    while (performance.now() < deadline) {
      if ((await onServer(server, (c) => c.zcard(lockRedisKeys('lock:', name).queue))) > 0) return;
      await sleep(10);
    }
    throw new Error(`No waiter queued for ${name} within ${WAIT_MS} ms`);
  }

  /**
   * Leases of locks whose release was lost in the switch end by themselves;
   * Redis sends no event for that here. A waiter whose `leave` was lost in
   * the switch (its wait ran out while the connection was down, or the
   * demoted master refused the write) stays in line until its own waiter
   * lease ends, three `pollMs` after it last refreshed it, as documented:
   * such waiting-line keys may outlive this wait, but only with an expiry
   * that ends them by themselves.
   */
  async function expectNoLockKeysLeft(server: RedisServer): Promise<void> {
    const slack = Slack.start();
    const deadline = performance.now() + TTL_MS + 1_000;
    const held = (keys: string[]) => keys.filter((key) => !/:(q|qx)$/.test(key));
    let left = await lockKeysOn(server);
    while (held(left).length > 0 && performance.now() < deadline + slack.ms) {
      await sleep(100);
      left = await lockKeysOn(server);
    }
    slack.stop();
    expect(held(left)).toEqual([]);
    for (const key of left) {
      const pttl = await onServer(server, (c) => c.pttl(key));
      expect({ key, expiresBy: pttl > 0 && pttl <= 3 * POLL_MS }).toEqual({
        key,
        expiresBy: true,
      });
    }
  }
});

/** Retries `fn` (which must fail only with this library's errors) until it succeeds or `timeoutMs` passes. */
async function recoverWithin(timeoutMs: number, fn: () => Promise<unknown>): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await fn();
      return;
    } catch (error) {
      if (!(error instanceof RedisTxError) || performance.now() > deadline) throw error;
      // The connection is reconnecting; there is no event of the module's to await here.
      await sleep(100);
    }
  }
}
