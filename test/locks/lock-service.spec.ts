import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { getEventListeners } from 'node:events';
import type { INestApplication } from '@nestjs/common';
import {
  channelNames,
  InvalidLockKeyError,
  type Lock,
  type LockAcquireEvent,
  LockLostError,
  LockNotAcquiredError,
  LockService,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { nextEvent } from '../support/next-event.js';
import { createTestApp } from '../support/nest-app.js';

/** A read-modify-write that loses updates unless the lock excludes the others. */
async function unsafeIncrement(
  bed: {
    observer: {
      get(k: string): Promise<string | null>;
      set(k: string, v: string): Promise<unknown>;
    };
  },
  key: string,
) {
  const value = Number(await bed.observer.get(key));
  await new Promise((resolve) => setImmediate(resolve));
  await bed.observer.set(key, String(value + 1));
}

describe('LockService', () => {
  const bed = useAppWithRedis({ options: { locks: { ttlMs: 2_000, pollMs: 1_000 } } });
  let second: INestApplication;
  const locks = () => bed.app.get(LockService);

  beforeAll(async () => {
    // A second application on the same Redis: its own connections, its own tokens.
    second = await createTestApp({ options: { connection: bed.server.url } });
  });
  bed.beforeStop(() => second?.close());

  /** Takes `name` in the first application after waiting for the second to release it: both then know it contended. */
  async function holdAfterWaiting(name: string): Promise<Lock> {
    const blocker = await second.get(LockService).acquire(name);
    const holderWaits = nextEvent(channelNames.lockWait);
    const holding = locks().acquire(name, { waitMs: 30_000 });
    await holderWaits;
    await blocker.release();
    return holding;
  }

  it('excludes: 16 concurrent workers from two applications keep a read-modify-write counter exact', async () => {
    const services = [locks(), second.get(LockService)];
    await Promise.all(
      Array.from({ length: 16 }, async (_, worker) => {
        for (let i = 0; i < 10; i++) {
          await services[worker % 2]!.using('counter', () => unsafeIncrement(bed, 'counter'));
        }
      }),
    );
    expect(await bed.observer.get('counter')).toBe('160');
  });

  it('gives strictly increasing fencing tokens to every acquisition of a key, whoever acquires', async () => {
    const tokens: number[] = [];
    for (let i = 0; i < 6; i++) {
      const service = i % 2 ? second.get(LockService) : locks();
      const lock = await service.acquire('fenced');
      tokens.push(lock.fencingToken);
      await lock.release();
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
  });

  it('is a try-lock with waitMs 0, and tryAcquire answers null when busy', async () => {
    const held = await locks().acquire('busy');
    try {
      await expect(second.get(LockService).acquire('busy', { waitMs: 0 })).rejects.toThrow(
        LockNotAcquiredError,
      );
      expect(await second.get(LockService).tryAcquire('busy')).toBeNull();
      expect(await locks().isLocked('busy')).toBe(true);
    } finally {
      expect(await held.release()).toBe(true);
    }
    expect(await locks().isLocked('busy')).toBe(false);
    expect(await held.release()).toBe(false);
  });

  it('wakes a waiter through the release message, before the polling fallback could', async () => {
    const app = await createTestApp({
      options: { connection: bed.server.url, locks: { pollMs: 60_000 } },
    });
    const events: LockAcquireEvent[] = [];
    const listener = (event: unknown) => events.push(event as LockAcquireEvent);
    subscribe(channelNames.lockAcquire, listener);
    try {
      const holder = await locks().acquire('handoff');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = app.get(LockService).acquire('handoff', { waitMs: 30_000 });
      // Release only once the waiter is in line (it announces its wait).
      await waitAnnounced;
      await holder.release();
      const lock = await waiting;
      expect(events.at(-1)).toMatchObject({ keys: ['handoff'], wokenBy: 'release' });
      await lock.release();
    } finally {
      unsubscribe(channelNames.lockAcquire, listener);
      await app.close();
    }
  });

  it('hands the lock to the waiter inside the release: the waiter holds it without a request of its own', async () => {
    // The holder waited for the lock itself, so it knows the lock is
    // contended and releases with the script that hands over (a holder that
    // never saw contention tries the short release first; see below).
    const holder = await holdAfterWaiting('direct');
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = second.get(LockService).acquire('direct', { waitMs: 30_000 });
    await waitAnnounced;
    await bed.observer.config('RESETSTAT');
    await holder.release();
    const lock = await waiting;
    const stats = await bed.observer.info('commandstats');
    // One script call, the release, which handed the lock over: the waiter's
    // lease counts from its own last request, which the release came after
    // (EVAL the first time a connection runs a script, EVALSHA after).
    const calls = [...stats.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)].map((m) => Number(m[1]));
    expect(calls.reduce((a, b) => a + b, 0)).toBe(1);
    expect(lock.signal.aborted).toBe(false);
    expect(lock.fencingToken).toBeGreaterThan(holder.fencingToken);
    expect(await second.get(LockService).isLocked('direct')).toBe(true);
    expect(await lock.release()).toBe(true);
  });

  it('takes and releases a lock nobody waits for with short scripts, and hands over when someone came to wait', async () => {
    const watcher = bed.observer.duplicate();
    const monitor = await watcher.monitor();
    // The number of keys of each script call on a name, as MONITOR shows it:
    // 4 for the short acquire, 2 for the short release, 6 for the full ones.
    const calls = new Map<string, number[]>();
    let heard: { name: string; count: number; resolve: () => void } | undefined;
    monitor.on('monitor', (_time: string, args: string[]) => {
      const name = /\{([^}]+)\}/.exec(args[3] ?? '')?.[1];
      if (!/^eval(sha)?$/i.test(args[0]!) || !name) return;
      const seen = calls.get(name) ?? [];
      seen.push(Number(args[2]));
      calls.set(name, seen);
      if (heard?.name === name && seen.length === heard.count) heard.resolve();
    });
    const scriptsOn = (name: string, count: number) =>
      new Promise<number[]>((resolve) => {
        heard = { name, count, resolve: () => resolve(calls.get(name)!) };
        if (calls.get(name)?.length === count) resolve(calls.get(name)!);
      });
    try {
      const alone = await locks().acquire('alone');
      expect(await alone.release()).toBe(true);
      expect(await scriptsOn('alone', 2)).toEqual([4, 2]);

      const holder = await locks().acquire('joined');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = second.get(LockService).acquire('joined', { waitMs: 30_000 });
      await waitAnnounced;
      expect(await holder.release()).toBe(true);
      const next = await waiting;
      expect(next.fencingToken).toBeGreaterThan(holder.fencingToken);
      expect(await next.release()).toBe(true);
      // The holder took it short; the waiter found it held (short), then got
      // in line (full); the holder's short release found the line and left it
      // to the full one, which handed over; the waiter, who had waited,
      // released with the full script.
      expect(await scriptsOn('joined', 6)).toEqual([4, 4, 6, 2, 6, 6]);
    } finally {
      monitor.disconnect();
      watcher.disconnect();
    }
  });

  it('lines a writer up behind a writer, and hands over from writer to writer, without the housekeeping only readers and semaphores need', async () => {
    // Both applications now know the name is contended and use the full scripts.
    const holder = await holdAfterWaiting('turns');
    await bed.observer.config('RESETSTAT');
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = second.get(LockService).acquire('turns', { waitMs: 30_000 });
    await waitAnnounced;
    await holder.release();
    const next = await waiting;
    const stats = await bed.observer.info('commandstats');
    const calls = (command: string) =>
      Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0);
    // While a writer holds the lock nobody can read, and nothing can be
    // granted: joining the line looks at neither the readers nor the
    // permits, and the release hands the writer's key over in one SET
    // rather than deleting it first.
    expect({
      zremrangebyscore: calls('zremrangebyscore'),
      zcard: calls('zcard'),
      del: calls('del'),
      set: calls('set'),
    }).toEqual({ zremrangebyscore: 0, zcard: 0, del: 0, set: 1 });
    expect(next.fencingToken).toBeGreaterThan(holder.fencingToken);
    expect(await next.release()).toBe(true);
  });

  it("announces a hand-off on the waiting application's own channel, heard by no other application", async () => {
    const third = await createTestApp({ options: { connection: bed.server.url } });
    const watcher = bed.observer.duplicate();
    const heard: { channel: string; message: string }[] = [];
    watcher.on('pmessage', (_pattern: string, channel: string, message: string) =>
      heard.push({ channel, message }),
    );
    try {
      await watcher.psubscribe('lock:handoff*');
      // The third application waits too (on another lock), so it listens.
      const blocker = await locks().acquire('elsewhere');
      const thirdWaits = nextEvent(channelNames.lockWait);
      const thirdWaiting = third.get(LockService).acquire('elsewhere', { waitMs: 30_000 });
      await thirdWaits;

      const holder = await locks().acquire('routed');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = second.get(LockService).acquire('routed', { waitMs: 30_000 });
      await waitAnnounced;
      await holder.release();
      const lock = await waiting;
      await lock.release();

      const channels = await bed.observer.pubsub('CHANNELS', 'lock:handoff*');
      // Each waiting application subscribed a channel of its own.
      expect(channels.length).toBeGreaterThanOrEqual(2);
      const handOff = heard.find((h) => h.message.split(' ')[1] === String(lock.fencingToken));
      const app = handOff?.message.split(' ')[0]!.split('@')[1]!.split('.')[0];
      expect(handOff?.channel).toBe(`lock:handoff:${app}`);
      // The second application's channel: only its waiters' hand-offs are on it.
      expect(heard.filter((h) => h.channel === handOff!.channel)).toHaveLength(1);

      await blocker.release();
      await (await thirdWaiting).release();
    } finally {
      await watcher.quit();
      await third.close();
    }
  });

  it('wakes a waiter of the releasing application from the release reply, publishing nothing', async () => {
    const app = await createTestApp({
      options: { connection: bed.server.url, locks: { pollMs: 60_000 } },
    });
    const service = app.get(LockService);
    const events: LockAcquireEvent[] = [];
    const listener = (event: unknown) => events.push(event as LockAcquireEvent);
    subscribe(channelNames.lockAcquire, listener);
    try {
      const holder = await service.acquire('local');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = service.acquire('local', { waitMs: 30_000 });
      await waitAnnounced;
      await bed.observer.config('RESETSTAT');
      await holder.release();
      const lock = await waiting;
      // Woken by the release, long before its 60 s poll, with no PUBLISH run.
      expect(events.at(-1)).toMatchObject({ keys: ['local'], wokenBy: 'release' });
      expect(await bed.observer.info('commandstats')).not.toMatch(/cmdstat_publish:/);
      expect(lock.fencingToken).toBeGreaterThan(holder.fencingToken);
      expect(await service.isLocked('local')).toBe(true);
      expect(await lock.release()).toBe(true);
    } finally {
      unsubscribe(channelNames.lockAcquire, listener);
      await app.close();
    }
  });

  it('serves waiters in arrival order, handing off to a different worker each time', async () => {
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, worker) => {
        for (let i = 0; i < 10; i++) {
          await (worker % 2 ? second.get(LockService) : locks()).using(
            'fair',
            async () => {
              order.push(worker);
              await new Promise((resolve) => setImmediate(resolve));
            },
            { waitMs: 20_000 },
          );
        }
      }),
    );
    const perWorker = order.reduce<number[]>((n, w) => ((n[w] = (n[w] ?? 0) + 1), n), []);
    expect(perWorker).toEqual([10, 10, 10, 10, 10, 10]);
    const sameWorkerAgain = order.filter((w, i) => i > 0 && order[i - 1] === w).length;
    // Under steady contention a releasing worker must not grab the lock back.
    expect(sameWorkerAgain).toBeLessThanOrEqual(6);
  });

  it('re-enters a lock the call chain holds instead of deadlocking, and frees it at the outermost exit', async () => {
    const service = locks();
    await service.using('re', async (outer) => {
      await service.using('re', async (inner) => {
        expect(inner.fencingToken).toBe(outer.fencingToken);
        expect(service.current('re')?.fencingToken).toBe(outer.fencingToken);
      });
      expect(await service.isLocked('re')).toBe(true);
    });
    expect(await service.isLocked('re')).toBe(false);
  });

  it('re-enters a multi-key lock through all its keys and still frees it at the outermost exit', async () => {
    const service = locks();
    await service.using(['m1', 'm2'], async () => {
      await service.using(['m2', 'm1'], async (inner) => {
        expect([...inner.fencingTokens.keys()]).toEqual(['m1', 'm2']);
      });
      await service.using('m1', async () => undefined);
      expect(await service.isLocked('m1')).toBe(true);
    });
    expect(await service.isLocked('m1')).toBe(false);
    expect(await service.isLocked('m2')).toBe(false);
  });

  it('takes several keys all or none, and two callers naming them in opposite orders never deadlock', async () => {
    const service = locks();
    const other = second.get(LockService);
    await Promise.all([
      (async () => {
        for (let i = 0; i < 20; i++)
          await service.using(['a', 'b'], () => unsafeIncrement(bed, 'ab'), { waitMs: 10_000 });
      })(),
      (async () => {
        for (let i = 0; i < 20; i++)
          await other.using(['b', 'a'], () => unsafeIncrement(bed, 'ab'), { waitMs: 10_000 });
      })(),
    ]);
    expect(await bed.observer.get('ab')).toBe('40');

    const b = await other.acquire('b');
    await expect(service.acquire(['a', 'b'], { waitMs: 0 })).rejects.toThrow(LockNotAcquiredError);
    expect(await service.isLocked('a')).toBe(false);
    await b.release();
  });

  it('lets readers share and makes writers exclusive', async () => {
    const service = locks();
    const other = second.get(LockService);
    const r1 = await service.acquire('doc', { mode: 'read' });
    const r2 = await other.acquire('doc', { mode: 'read', waitMs: 0 });
    expect(await other.tryAcquire('doc', { mode: 'write' })).toBeNull();
    await r1.release();
    expect(await other.tryAcquire('doc', { mode: 'write' })).toBeNull();
    await r2.release();
    const w = await other.acquire('doc', { mode: 'write', waitMs: 0 });
    expect(await service.tryAcquire('doc', { mode: 'read' })).toBeNull();
    await w.release();
  });

  it('never lets a semaphore exceed its permits', async () => {
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 12 }, async (_, worker) => {
        for (let i = 0; i < 5; i++) {
          await (worker % 2 ? second.get(LockService) : locks()).using(
            'pool',
            async () => {
              most = Math.max(most, ++inside);
              await new Promise((resolve) => setImmediate(resolve));
              inside--;
            },
            { permits: 3, waitMs: 20_000 },
          );
        }
      }),
    );
    expect(most).toBeLessThanOrEqual(3);

    // Three holders at once, and a fourth only when one leaves.
    const held = await Promise.all(
      [locks(), second.get(LockService), locks()].map((s) =>
        s.acquire('pool', { permits: 3, waitMs: 0 }),
      ),
    );
    expect(await second.get(LockService).tryAcquire('pool', { permits: 3 })).toBeNull();
    await held[0]!.release();
    const fourth = await second.get(LockService).acquire('pool', { permits: 3, waitMs: 0 });
    await Promise.all([...held.slice(1), fourth].map((lock) => lock.release()));
  });

  it('aborts the holder’s signal when its lease lapses, and its late release spares the next holder', async () => {
    const old = await locks().acquire('lease', { ttlMs: 300 });
    const lost = new Promise<unknown>((resolve) =>
      old.signal.addEventListener('abort', () => resolve(old.signal.reason)),
    );
    // Freeze Redis past the lease: renewal cannot get through.
    bed.server.pause();
    const reason = await lost;
    bed.server.resume();
    expect(reason).toBeInstanceOf(LockLostError);

    const next = await second.get(LockService).acquire('lease', { waitMs: 5_000 });
    expect(next.fencingToken).toBeGreaterThan(old.fencingToken);
    expect(await old.release()).toBe(false);
    expect(await old.extend()).toBe(false);
    expect(await locks().isLocked('lease')).toBe(true);
    expect(await next.release()).toBe(true);
  });

  it.each([
    ['an exclusive lock', {}, {}],
    ['a read lock', { mode: 'read' }, { mode: 'write' }],
    ['a semaphore permit', { permits: 1 }, { permits: 1 }],
  ] as const)(
    'renews the lease of %s while the holder runs, past its length',
    async (_, mode, rival) => {
      let renewed!: () => void;
      const threeRenewals = new Promise<void>((resolve) => (renewed = resolve));
      let count = 0;
      const listener = () => {
        if (++count === 3) renewed();
      };
      subscribe(channelNames.lockRenew, listener);
      try {
        await locks().using(
          'long',
          async (lock: Lock) => {
            await threeRenewals; // three renewals of a 150 ms lease: well past its first end
            expect(lock.signal.aborted).toBe(false);
            expect(await second.get(LockService).tryAcquire('long', rival)).toBeNull();
          },
          { ttlMs: 150, ...mode },
        );
      } finally {
        unsubscribe(channelNames.lockRenew, listener);
      }
      expect(await locks().isLocked('long')).toBe(false);
    },
  );

  it('keeps working after SCRIPT FLUSH (scripts are reloaded on NOSCRIPT)', async () => {
    await (await locks().acquire('flushed')).release();
    await bed.observer.script('FLUSH');
    const lock = await locks().acquire('flushed');
    expect(await lock.extend()).toBe(true);
    expect(await lock.release()).toBe(true);
  });

  it('publishes acquire, wait, release and loss events with durations', async () => {
    const seen: [string, Record<string, unknown>][] = [];
    const names = [
      channelNames.lockAcquire,
      channelNames.lockWait,
      channelNames.lockRelease,
      channelNames.lockLoss,
    ];
    const listeners = names.map(
      (name) => [name, (m: unknown) => seen.push([name, m as Record<string, unknown>])] as const,
    );
    for (const [name, listener] of listeners) subscribe(name, listener);
    try {
      const first = await locks().acquire('observed');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = second.get(LockService).acquire('observed', { waitMs: 5_000 });
      await waitAnnounced;
      await first.release();
      const next = await waiting;
      await bed.observer.del('lock:{observed}');
      expect(await next.extend()).toBe(false);
      await next.release();
    } finally {
      for (const [name, listener] of listeners) unsubscribe(name, listener);
    }
    expect(seen.map(([name]) => name.split(':').pop())).toEqual([
      'acquire',
      'wait',
      'release',
      'acquire',
      'loss',
      'release',
    ]);
    expect(seen[2]![1]).toMatchObject({
      keys: ['observed'],
      released: true,
      heldMs: expect.any(Number),
    });
    expect(seen[3]![1]).toMatchObject({ wokenBy: 'release', waitedMs: expect.any(Number) });
    expect(seen[5]![1]).toMatchObject({ released: false });
  });

  it('cancels a wait through an AbortSignal', async () => {
    const held = await locks().acquire('cancel');
    const controller = new AbortController();
    const waiting = second
      .get(LockService)
      .acquire('cancel', { waitMs: 30_000, signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toThrow(/cancelled/);
    await held.release();
  });

  it('leaves no listener on a long-lived signal once a wait ends, and gives its reason as the cause when it aborts', async () => {
    const controller = new AbortController();
    const { signal } = controller;
    for (let i = 0; i < 3; i++) {
      const held = await locks().acquire('long-lived');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = second.get(LockService).acquire('long-lived', { waitMs: 30_000, signal });
      await waitAnnounced;
      expect(getEventListeners(signal, 'abort')).toHaveLength(1);
      await held.release();
      await (await waiting).release();
      expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    }
    const held = await locks().acquire('long-lived');
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = second.get(LockService).acquire('long-lived', { waitMs: 30_000, signal });
    await waitAnnounced;
    const reason = new Error('the request was cancelled');
    controller.abort(reason);
    const error = await waiting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockNotAcquiredError);
    expect(error).toMatchObject({ reason: 'aborted', cause: reason });
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    await held.release();
  });

  it.each([
    [''],
    ['   '],
    ['order:undefined'],
    ['[object Object]'],
    ['x'.repeat(600)],
    [undefined],
    [null],
    [42],
  ])('rejects the key %p with InvalidLockKeyError before Redis is touched', async (key) => {
    await bed.observer.config('RESETSTAT');
    await expect(locks().acquire(key as string)).rejects.toThrow(InvalidLockKeyError);
    const stats = await bed.observer.info('commandstats');
    expect(stats).not.toMatch(/cmdstat_(evalsha|eval):/);
  });
});
