import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Redis } from 'ioredis';
import {
  channelNames,
  type Lock,
  LockLostError,
  LockNotAcquiredError,
  type LockRenewEvent,
  LockService,
} from '../../lib/index.js';
import { driftMs, leaseEndsAt } from '../../lib/locks/lease-validity.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { KeyEvents } from '../support/key-events.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';
import { useRedisServer } from '../support/redis.js';

/** Resolves with the reason `lock.signal` aborts with. */
function lossOf(lock: Lock): Promise<unknown> {
  if (lock.signal.aborted) return Promise.resolve(lock.signal.reason);
  return new Promise((resolve) =>
    lock.signal.addEventListener('abort', () => resolve(lock.signal.reason), { once: true }),
  );
}

/** Resolves once `count` renewals of the lock on `key` got through. */
function renewals(key: string, count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const listener = (message: unknown) => {
      if (!(message as LockRenewEvent).keys.includes(key) || ++seen < count) return;
      unsubscribe(channelNames.lockRenew, listener);
      resolve();
    };
    subscribe(channelNames.lockRenew, listener);
  });
}

/** Runs nothing else for as long as it takes `performance.now()` to pass `until`: a process paused, as seen from inside. */
function blockUntil(until: number): void {
  while (performance.now() < until);
}

describe('the lease arithmetic', () => {
  it('sets aside 1% of the lease and 2 ms, and counts from the send', () => {
    expect(driftMs(1_000)).toBe(12);
    expect(leaseEndsAt(500, 1_000)).toBe(1_488);
    expect(leaseEndsAt(0, 30_000)).toBe(29_698);
  });
});

describe('a lock is never handed over after its lease could have ended', () => {
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let observer: Redis;
  let events: KeyEvents;
  /** Every connection through the proxy. */
  let slow: INestApplication;
  /** Straight to Redis. */
  let direct: INestApplication;

  beforeAll(async () => {
    observer = new Redis(redis.server.url);
    await KeyEvents.enable(observer);
    // A long poll: waiters act on hand-offs only, so each step below is one the test caused.
    const locks = { pollMs: 60_000 };
    [slow, direct] = await Promise.all([
      createTestApp({
        options: { connection: { host: net.proxy.host, port: net.proxy.port }, locks },
      }),
      createTestApp({ options: { connection: redis.server.url, locks } }),
    ]);
  });
  redis.beforeStop(async () => {
    net.proxy.pass();
    await Promise.all([slow?.close(), direct?.close()]);
    await observer?.quit();
  });
  beforeEach(async () => {
    await observer.flushall();
    events = await new KeyEvents(observer).start();
  });
  afterEach(() => events.stop());

  it('an acquire whose reply comes after the lease ended is refused as lease-expired, and the next holder keeps its lock', async () => {
    const ttlMs = 1_000;
    // Each way: the request reaches Redis a lease after it was sent, and the reply a lease after that.
    net.proxy.delay(ttlMs);
    const late = slow
      .get(LockService)
      .acquire('late-reply', { ttlMs, waitMs: 0 })
      .catch((error: unknown) => error);
    // The lease Redis gave the slow caller ends before its reply is on the way back: another takes it.
    await events.next('expired', 'lock:{late-reply}');
    const next = await direct.get(LockService).acquire('late-reply', { waitMs: 0 });

    const refused = await late;
    expect(refused).toBeInstanceOf(LockNotAcquiredError);
    expect(refused).toMatchObject({ reason: 'lease-expired' });
    // The slow caller gave back what it won by token only: the next holder still has it.
    expect(next.signal.aborted).toBe(false);
    expect(await next.release()).toBe(true);
  });

  it('a hand-off that reaches the waiter after its lease ended is not a lock: the waiter lines up again', async () => {
    const holder = await direct.get(LockService).acquire('late-handoff');
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = slow.get(LockService).acquire('late-handoff', { ttlMs: 1_000, waitMs: 30_000 });
    await waitAnnounced;

    // The hand-off message is held up past the whole lease it gave the waiter.
    net.proxy.delay(1_500);
    await holder.release();
    await events.next('expired', 'lock:{late-handoff}');
    const current = await direct.get(LockService).acquire('late-handoff', { waitMs: 0 });
    events.forget();

    // The waiter either takes the message for a lock (wrong: `current` holds
    // it), or confirms it, finds it gone, and lines up again.
    const outcome = await Promise.race([
      waiting.then(() => 'handed a lock'),
      events.next('zadd', 'lock:{late-handoff}:q').then(() => 'lined up again'),
    ]);
    expect(outcome).toBe('lined up again');
    expect(current.signal.aborted).toBe(false);

    net.proxy.pass();
    expect(await current.release()).toBe(true);
    const lock = await waiting;
    expect(lock.fencingToken).toBeGreaterThan(current.fencingToken);
    expect(lock.signal.aborted).toBe(false);
    expect(await lock.release()).toBe(true);
  });

  it('signal aborts at the lease end though no renewal ran: read it after a pause and it has aborted', async () => {
    const sentAt = performance.now();
    const lock = await slow.get(LockService).acquire('paused', { ttlMs: 300 });
    // No timer, no renewal, no reply can run until this returns.
    blockUntil(sentAt + 300);
    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    await lock.release();
  });

  it('a transaction runner can ask, before EXEC, whether the call chain still holds its locks', async () => {
    const locks = slow.get(LockService);
    let thrown: unknown;
    await locks.using(
      'before-exec',
      async () => {
        locks.assertChainLeases(); // fresh: holds
        blockUntil(performance.now() + 300);
        try {
          locks.assertChainLeases();
        } catch (error) {
          thrown = error;
        }
      },
      { ttlMs: 300 },
    );
    expect(thrown).toBeInstanceOf(LockLostError);
    // Outside any lock: nothing to assert.
    expect(() => locks.assertChainLeases()).not.toThrow();
  });

  it('a lock whose renewals never get through aborts its signal at the local lease end', async () => {
    const sentAt = performance.now();
    const lock = await slow.get(LockService).acquire('blocked', { ttlMs: 600 });
    net.proxy.blackhole();
    try {
      const reason = await lossOf(lock);
      expect(reason).toBeInstanceOf(LockLostError);
      // Never before the lease end on this clock.
      expect(performance.now()).toBeGreaterThanOrEqual(leaseEndsAt(sentAt, 600));
    } finally {
      // The renewal the black hole swallowed is never answered: a new connection serves the release.
      net.proxy.pass();
      net.proxy.cutAll();
      await lock.release().catch(() => false);
    }
  });

  it('renewals whose round trip is longer than a third of the lease keep the lock', async () => {
    const ttlMs = 1_500;
    // 560 ms and more there and back: over ttl/3 (500 ms), under the limit of (ttl - drift) / 2 (741 ms).
    net.proxy.delay(280);
    const lock = await slow.get(LockService).acquire('slow-renewals', { ttlMs });
    const outcome = await Promise.race([
      renewals('slow-renewals', 3).then(() => 'renewed'),
      lossOf(lock).then((reason) => `lost: ${String(reason)}`),
    ]);
    expect(outcome).toBe('renewed');
    expect(await observer.pttl('lock:{slow-renewals}')).toBeGreaterThan(0);
    net.proxy.pass();
    expect(await lock.release()).toBe(true);
  });
});
