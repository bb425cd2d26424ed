import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import {
  channelNames,
  type Lock,
  LockLostError,
  LockNotAcquiredError,
  LockService,
  ShuttingDownError,
} from '../../lib/index.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { FencedResource } from '../support/fenced-resource.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';
import { useRedisServer } from '../support/redis.js';
import { eventually, Slack } from '../support/timing.js';
import type { RedisServer } from '../../tools/redis-server.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { openHandles } from '../support/open-handles.js';

/** Resolves with the reason `lock.signal` aborts with. */
function lossOf(lock: Lock): Promise<unknown> {
  if (lock.signal.aborted) return Promise.resolve(lock.signal.reason);
  return new Promise((resolve) =>
    lock.signal.addEventListener('abort', () => resolve(lock.signal.reason), { once: true }),
  );
}

/**
 * Waits until no more handles are open than in `baseline`. The proxy runs in
 * this process and closes its own sockets to Redis a moment after the app's
 * have gone, with no event to await (later still by what it was told to
 * delay, `delayedMs`); a handle the app leaked never goes.
 */
async function noHandlesBeyond(
  baseline: Record<string, number>,
  observer: Redis,
  delayedMs = 0,
): Promise<void> {
  const settled = async () => {
    const now = openHandles();
    return Object.entries(now).every(([kind, count]) => count <= (baseline[kind] ?? 0));
  };
  const slack = await Slack.start().measureRoundTrip(observer);
  try {
    await eventually(
      settled,
      () => delayedMs + slack.ms,
      'open handles back to the baseline',
    ).catch(() => {
      expect(openHandles()).toEqual(baseline);
    });
  } finally {
    slack.stop();
  }
}

/** Lock keys left in Redis, besides the fence counter that is kept by design. */
async function strandedLockKeys(observer: Redis): Promise<string[]> {
  return (await observer.keys('lock:*')).filter((key) => key !== 'lock:fence');
}

describe('locks when Redis or the holder freezes', () => {
  useUnhandledRejections();
  const bed = useRedisServer({ args: ['--enable-debug-command', 'yes'] });
  let app: INestApplication;
  let other: INestApplication;
  let observer: Redis;
  const locks = () => app.get(LockService);

  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    const options = { connection: bed.server.url, locks: { pollMs: 50 } };
    [app, other] = await Promise.all([createTestApp({ options }), createTestApp({ options })]);
  });
  bed.beforeStop(async () => {
    await Promise.all([app?.close(), other?.close()]);
    await observer?.quit();
  });
  beforeEach(() => observer.flushall());
  afterEach(async () => expect(await strandedLockKeys(observer)).toEqual([]));

  it('a holder whose event loop is blocked past its lease loses the lock, and its late write is refused', async () => {
    const resource = new FencedResource(observer, 'blocked');
    const stale = await locks().acquire('blocked', { ttlMs: 300 });
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = other.get(LockService).acquire('blocked', { waitMs: 10_000 });
    await waitAnnounced;

    // The fault itself: nothing in this process runs for three leases.
    const until = performance.now() + 900;
    while (performance.now() < until);

    const next = await waiting;
    expect(next.fencingToken).toBeGreaterThan(stale.fencingToken);
    expect(await resource.write(next.fencingToken, 'current holder')).toBe(true);
    // The blocked holder carries on with the write it was about to make.
    expect(await resource.write(stale.fencingToken, 'stale holder')).toBe(false);
    const reason = await lossOf(stale);
    expect(reason).toBeInstanceOf(LockLostError);
    expect((reason as Error).message).toMatch(/Lock "blocked" was lost/);
    expect(await resource.state()).toMatchObject({
      value: 'current holder',
      accepted: 1,
      rejected: 1,
    });

    expect(await stale.release()).toBe(false);
    expect(await other.get(LockService).isLocked('blocked')).toBe(true);
    expect(await next.release()).toBe(true);
  });

  // Each freezes Redis for longer than the 1 s lease; SIGSTOP is lifted the
  // moment the holder gives up, so its held-up renewal may still get through.
  const freezes: [string, (server: RedisServer) => Promise<unknown>][] = [
    ['SIGSTOP', async (server) => server.pause()],
    [
      'CLIENT PAUSE WRITE',
      async () => {
        await observer.client('PAUSE', 1_500, 'WRITE');
        // A write of the observer's own is held until the pause ends: that is the thaw.
        return observer.set('probe:after-pause', '1');
      },
    ],
    ['DEBUG SLEEP', async () => observer.call('DEBUG', 'SLEEP', '1.5')],
  ];

  it.each(freezes)(
    'Redis frozen by %s: the lease runs out locally, nothing is left held after it, new acquisitions work',
    async (how, freeze) => {
      const key = `lock:{frozen:${how}}`;
      const slack = await Slack.start().measureRoundTrip(observer);
      const held = await locks().acquire(`frozen:${how}`, { ttlMs: 1_000 });
      const started = performance.now();
      const thawed = freeze(bed.server);
      const reason = await lossOf(held);
      const lostAfter = performance.now() - started;
      if (how === 'SIGSTOP') bed.server.resume();
      await thawed;

      expect(reason).toBeInstanceOf(LockLostError);
      expect((reason as Error).message).toMatch(/lease ran out before a renewal got through/);
      // Counted from when the acquire was sent, so never later than the lease
      // after it resolved, give or take how late this process's timers ran.
      slack.stop();
      expect(lostAfter).toBeLessThan(1_000 + slack.ms);
      // The renewal held up by the freeze runs now; had it revived the lease,
      // the key would stay for another second, so waiting longer than that
      // would prove nothing.
      await eventually(
        async () => (await observer.exists(key)) === 0,
        () => Math.min(400 + slack.ms, 950),
        `${key} is gone`,
      );
      const next = await other.get(LockService).acquire(`frozen:${how}`, { waitMs: 0 });
      expect(next.fencingToken).toBeGreaterThan(held.fencingToken);
      expect(await held.release()).toBe(false);
      expect(await next.release()).toBe(true);
    },
  );

  it.each([
    ['an exclusive lock', {}, {}],
    ['a read lock', { mode: 'read' as const }, { mode: 'write' as const }],
    ['a semaphore permit', { permits: 1 }, { permits: 1 }],
  ])(
    'a stale holder of %s can neither release nor extend the current holder',
    async (_, staleMode, currentMode) => {
      // Extends test/locks/lock-service.spec.ts ("its late release spares the next holder"):
      // here every mode, and the current holder's Redis state is compared exactly.
      const stale = await locks().acquire('owner', { ttlMs: 200, ...staleMode });
      // Redis frozen past the lease: the holder is stale from then on.
      bed.server.pause();
      await lossOf(stale);
      bed.server.resume();
      const current = await other
        .get(LockService)
        .acquire('owner', { ttlMs: 60_000, waitMs: 10_000, ...currentMode });
      const snapshot = async () => ({
        writer: await observer.get('lock:{owner}'),
        readers: await observer.zrange('lock:{owner}:r', '0', '-1', 'WITHSCORES'),
        permits: await observer.zrange('lock:{owner}:s', '0', '-1', 'WITHSCORES'),
        pttl: Math.max(
          await observer.pttl('lock:{owner}'),
          await observer.pttl('lock:{owner}:r'),
          await observer.pttl('lock:{owner}:s'),
        ),
      });
      const before = await snapshot();
      expect(await stale.extend(120_000)).toBe(false);
      expect(await stale.release()).toBe(false);
      const after = await snapshot();
      expect({ ...after, pttl: 0 }).toEqual({ ...before, pttl: 0 });
      // Neither extended (by the stale 120 s) nor shortened: only time went by.
      expect(after.pttl).toBeLessThanOrEqual(before.pttl);
      expect(after.pttl).toBeGreaterThan(50_000);
      expect(await current.release()).toBe(true);
    },
  );
});

describe('locks through a faulty network', () => {
  const PROXY_DELAY_MS = 300;
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let observer: Redis;

  beforeAll(() => {
    observer = new Redis(redis.server.url);
  });
  redis.beforeStop(() => observer?.quit());
  beforeEach(() => observer.flushall());
  afterEach(async () => expect(await strandedLockKeys(observer)).toEqual([]));

  /** An app whose every connection goes through the proxy; closed by the test. */
  function appThroughProxy(extra: object = {}): Promise<INestApplication> {
    return createTestApp({
      options: {
        connection: { host: net.proxy.host, port: net.proxy.port, ...extra },
        locks: { pollMs: 100 },
      },
    });
  }

  it('an acquire whose reply is lost (connection cut) fails as outcome-unknown, and the lock is released by token at once', async () => {
    const app = await appThroughProxy();
    try {
      const locks = app.get(LockService);
      // Loads the scripts, so that the next acquire goes out as EVALSHA.
      await (await locks.acquire('lost-reply')).release();
      const cut = net.proxy.faultOn('EVALSHA', 'cut-after-send');
      const error = await locks
        .acquire('lost-reply', { ttlMs: 60_000, waitMs: 2_000 })
        .catch((e: unknown) => e);
      await cut;
      expect(error).toBeInstanceOf(LockNotAcquiredError);
      expect((error as Error).message).toMatch(
        /connection to Redis failed while acquiring lock "lost-reply" \(.*closed before it answered EVALSHA.*\); whatever was taken is being released/,
      );
      expect((error as LockNotAcquiredError).reason).toBe('outcome-unknown');
      // Redis did take the lock; the library frees it long before its 60 s lease ends.
      await eventually(
        async () => (await observer.exists('lock:{lost-reply}')) === 0,
        () => 5_000,
        'the lock taken by the lost acquire is released',
      );
      const retry = await locks.acquire('lost-reply', { ttlMs: 60_000, waitMs: 2_000 });
      expect(await retry.release()).toBe(true);
    } finally {
      await app.close();
    }
  });

  it('an acquire whose reply never comes (commandTimeout) fails as outcome-unknown and the lock is released by token', async () => {
    const app = await appThroughProxy({ commandTimeout: 500 });
    try {
      const locks = app.get(LockService);
      await (await locks.acquire('no-reply')).release();
      const dropped = net.proxy.faultOn('EVALSHA', 'drop-reply');
      const error = await locks
        .acquire('no-reply', { ttlMs: 60_000, waitMs: 2_000 })
        .catch((e: unknown) => e);
      await dropped;
      expect(error).toBeInstanceOf(LockNotAcquiredError);
      expect((error as Error).message).toMatch(/while acquiring lock "no-reply"/);
      // The release goes out on the same connection; Redis runs it though its reply is dropped too.
      await eventually(
        async () => (await observer.exists('lock:{no-reply}')) === 0,
        () => 5_000,
        'the lock taken by the unanswered acquire is released',
      );
      // A connection that swallows replies is dead; once it is seen to be (a
      // TCP keepalive would), the client reconnects and a retry acquires.
      const reconnected = once(app.get(RedisConnections).locks.redis, 'ready');
      net.proxy.cutAll();
      await reconnected;
      const retry = await locks.acquire('no-reply', { ttlMs: 60_000, waitMs: 5_000 });
      expect(await retry.release()).toBe(true);
    } finally {
      await app.close();
    }
  });

  it('app.close() with locks held and a renewal on the wire releases every lock and leaves no handle', async () => {
    const baseline = openHandles();
    const app = await appThroughProxy();
    const locks = app.get(LockService);
    const held = await Promise.all([
      locks.acquire('closing:a', { ttlMs: 600 }),
      locks.acquire(['closing:b', 'closing:c'], { ttlMs: 600, mode: 'read' }),
    ]);
    const onTheWire = new Promise<void>((resolve) => {
      const off = net.proxy.onCommand((name) => {
        if (name !== 'EVALSHA') return;
        off();
        resolve();
      });
    });
    net.proxy.delay(PROXY_DELAY_MS);
    await onTheWire; // the first renewal (at 200 ms) has been sent and is held up
    await app.close();
    // Their holders were told to stop before the locks went.
    for (const lock of held) expect(lock.signal.reason).toBeInstanceOf(ShuttingDownError);
    expect(await strandedLockKeys(observer)).toEqual([]);
    net.proxy.pass();
    await noHandlesBeyond(baseline, observer, PROXY_DELAY_MS);
  });

  // closeClient() gives QUIT a short grace period, then cuts the socket, and
  // LockService gives its releases readyTimeoutMs at shutdown: neither waits
  // on a Redis that does not answer.
  it('app.close() while Redis cannot be reached still resolves, and the locks end with their lease', async () => {
    const baseline = openHandles();
    const start = () =>
      createTestApp({
        options: {
          connection: net.proxy.url,
          transactions: { readyTimeoutMs: 1_000 },
        },
      });
    const [reachable, app] = await Promise.all([start(), start()]);
    await reachable.get(LockService).acquire('reachable', { ttlMs: 600 });
    await app.get(LockService).acquire('unreachable', { ttlMs: 600 });
    const slack = await Slack.start().measureRoundTrip(observer);
    // What closing costs with Redis answering (Nest's hooks, the release,
    // QUIT): the same work as below, without its two waits. Milliseconds on
    // a busy machine, and more than its event-loop lag shows.
    const reachableStarted = performance.now();
    await reachable.close();
    const closeItself = performance.now() - reachableStarted;

    net.proxy.blackhole();
    const started = performance.now();
    await app.close();
    const closedAfter = performance.now() - started;
    // Releases are given up after readyTimeoutMs, then an unanswered QUIT is cut after 2 s.
    expect(closedAfter).toBeLessThan(1_000 + 2_000 + closeItself + slack.ms);
    slack.stop();
    await eventually(
      async () => (await observer.exists('lock:{unreachable}')) === 0,
      // The lease was 600 ms when taken; it ends by Redis's clock.
      () => 600 + slack.ms,
      'the lock of the unreachable holder expires with its lease',
    );
    net.proxy.pass();
    net.proxy.cutAll(); // the connections the blackhole left half-open
    await noHandlesBeyond(baseline, observer);
  });
});
