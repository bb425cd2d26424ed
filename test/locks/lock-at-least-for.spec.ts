import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  InvalidOptionsError,
  Locked,
  LockService,
  type LockOptions,
  type LockedOptions,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServers } from '../support/redis.js';

const JOB_KEY = 'lock:{job}';

@Injectable()
class Jobs {
  runs = 0;
  constructor(readonly locks: LockService) {}

  /** A scheduled job's shape: try once, skip when busy, and take no time at all. */
  @Locked('job', { waitMs: 0, onBusy: 'skip', lockAtLeastFor: 500 })
  async fast() {
    this.runs++;
    return this.locks.current('job')!.fencingToken;
  }

  @Locked('slow', { lockAtLeastFor: 100 })
  async slow(work: () => Promise<void>) {
    await work();
  }

  @Locked('job', { lockAtLeastFor: 500 })
  async outerKeeping(whileInside: () => Promise<void>) {
    await this.noop();
    await whileInside();
  }

  @Locked('job')
  async noop() {}

  @Locked('job')
  async outerPlain(whileInside: () => Promise<void>) {
    await this.innerKeeping();
    await whileInside();
  }

  @Locked('job', { lockAtLeastFor: 500 })
  async innerKeeping() {}

  @Locked('job', { ttlMs: 100, lockAtLeastFor: 400 })
  async longerThanLease() {}

  @Locked('job', { lockAtLeastFor: 300 })
  async failing() {
    throw new Error('job failed');
  }
}

/** Redis's own word that a key ran out of time: its `expired` keyspace event, which a DEL never sends. */
class Expiries {
  private readonly waiting = new Map<string, (at: number) => void>();

  private constructor(private readonly subscriber: Redis) {
    subscriber.on('message', (_channel: string, key: string) => {
      this.waiting.get(key)?.(performance.now());
      this.waiting.delete(key);
    });
  }

  static async open(url: string, observer: Redis): Promise<Expiries> {
    await observer.config('SET', 'notify-keyspace-events', 'Ex');
    const subscriber = new Redis(url);
    await subscriber.subscribe('__keyevent@0__:expired');
    return new Expiries(subscriber);
  }

  /** performance.now() when `key` expires; fails when it has not within `withinMs`. */
  async next(key: string, withinMs = 3_000): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        new Promise<number>((resolve) => this.waiting.set(key, resolve)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${key} did not expire within ${withinMs} ms`)),
            withinMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.waiting.delete(key);
    }
  }

  close(): Promise<unknown> {
    return this.subscriber.quit();
  }
}

describe('lockAtLeastFor', () => {
  const bed = useAppWithRedis({ providers: [Jobs], options: { locks: { pollMs: 100 } } });
  const jobs = () => bed.app.get(Jobs);
  const locks = () => bed.app.get(LockService);
  // Another instance of the app on the same Redis, as a second server would run it.
  let elsewhere: INestApplication;
  let expiries: Expiries;
  beforeAll(async () => {
    elsewhere = await createTestApp({
      options: { connection: bed.server.url, locks: { pollMs: 100 } },
      providers: [Jobs],
    });
    expiries = await Expiries.open(bed.server.url, bed.observer);
  });
  bed.beforeStop(async () => {
    await elsewhere?.close();
    await expiries?.close();
  });
  beforeEach(() => {
    jobs().runs = 0;
    elsewhere.get(Jobs).runs = 0;
  });
  afterEach(async () => {
    // Every kept lock has run out by itself before the test ended.
    expect(await bed.observer.keys('lock:{*')).toEqual([]);
  });

  it('returns at once, keeps the lock until lockAtLeastFor after it was taken, and lets it expire by itself', async () => {
    const started = performance.now();
    const token = await jobs().fast();
    const returnedAfter = performance.now() - started;
    const expired = expiries.next(JOB_KEY);
    const pttl = await bed.observer.pttl(JOB_KEY);
    // Returned before the kept time was over: the lock is still there, and
    // less than the 500 ms went by, however slow the machine.
    expect(pttl).toBeGreaterThan(0);
    expect(returnedAfter).toBeLessThan(500);
    expect(pttl).toBeLessThanOrEqual(500);

    // Another instance firing a little later, within the window, skips.
    expect(await elsewhere.get(Jobs).fast()).toBeUndefined();
    expect(elsewhere.get(Jobs).runs).toBe(0);

    expect((await expired) - started).toBeGreaterThanOrEqual(495);
    // Once it has run out, the next one runs, with a higher fencing token.
    const expiredAgain = expiries.next(JOB_KEY);
    expect(await elsewhere.get(Jobs).fast()).toBeGreaterThan(token);
    expect(elsewhere.get(Jobs).runs).toBe(1);
    await expiredAgain;
  });

  it('releases at once, as usual, when the work took longer than lockAtLeastFor', async () => {
    // The sleep is the work itself, longer than the 100 ms asked for.
    await jobs().slow(() => sleep(150));
    expect(await bed.observer.exists('lock:{slow}')).toBe(0);
    expect(await locks().isLocked('slow')).toBe(false);
  });

  it('keeps the lock after the work failed too, and the error still reaches the caller', async () => {
    const expired = expiries.next(JOB_KEY);
    await expect(jobs().failing()).rejects.toThrow('job failed');
    const pttl = await bed.observer.pttl(JOB_KEY);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(300);
    await expired;
  });

  it('sets the remainder even when it is longer than the lease (ttlMs)', async () => {
    const expired = expiries.next(JOB_KEY);
    const started = performance.now();
    await jobs().longerThanLease();
    const pttl = await bed.observer.pttl(JOB_KEY);
    // The 400 ms remainder, less what has gone by since the lock was taken
    // (at most since `started`); a 100 ms lease renewed by the watchdog
    // would be at most 100 ms, below this while under 300 ms went by.
    expect(pttl).toBeGreaterThanOrEqual(400 - (performance.now() - started) - 1);
    expect(pttl).toBeLessThanOrEqual(400);
    expect((await expired) - started).toBeGreaterThanOrEqual(395);
  });

  it('does not change re-entry: an inner hold neither releases nor cuts the outer one', async () => {
    let insideAfterInner: number | undefined;
    const expired = expiries.next(JOB_KEY);
    await jobs().outerKeeping(async () => {
      insideAfterInner = await bed.observer.pttl(JOB_KEY);
    });
    // Inside, after the inner call returned: still the whole default lease (30 s).
    expect(insideAfterInner).toBeGreaterThan(10_000);
    const pttl = await bed.observer.pttl(JOB_KEY);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(500);
    await expired;
  });

  it('is ignored on a re-entered call: the outer holder decides when the lock goes', async () => {
    let insideAfterInner: number | undefined;
    await jobs().outerPlain(async () => {
      insideAfterInner = await bed.observer.pttl(JOB_KEY);
    });
    expect(insideAfterInner).toBeGreaterThan(10_000);
    expect(await bed.observer.exists(JOB_KEY)).toBe(0);
  });

  it('works with LockService.using(), and a waiter gets the lock once the kept time is over', async () => {
    const started = performance.now();
    const result = await locks().using('job', () => 'done', {
      mode: 'read',
      lockAtLeastFor: 300,
    });
    expect(result).toBe('done');
    expect(await locks().isLocked('job')).toBe(true);
    // A writer elsewhere waits: no release message comes, its polling finds the lock free.
    const writer = await elsewhere.get(LockService).acquire('job', { waitMs: 3_000 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(295);
    expect(await writer.release()).toBe(true);
  });

  it('leaves a kept lock to expire when the app shuts down', async () => {
    const app = await createTestApp({
      options: { connection: bed.server.url },
      providers: [Jobs],
    });
    const expired = expiries.next(JOB_KEY);
    try {
      await app.get(Jobs).fast();
    } finally {
      await app.close();
    }
    // A shut-down instance that ran the job still keeps the others from running it in the window.
    expect(await bed.observer.pttl(JOB_KEY)).toBeGreaterThan(0);
    expect(await elsewhere.get(Jobs).fast()).toBeUndefined();
    await expired;
  });

  it('0 releases at once', async () => {
    expect(await locks().using('job', () => 1, { lockAtLeastFor: 0 })).toBe(1);
    expect(await bed.observer.exists(JOB_KEY)).toBe(0);
  });

  it.each([-1, 1.5, '100', Number.NaN, Number.POSITIVE_INFINITY])(
    'refuses lockAtLeastFor %p where it is written',
    async (bad) => {
      const options = { lockAtLeastFor: bad } as unknown as LockedOptions;
      const decorate = () => {
        class Bad {
          @Locked('k', options)
          async run() {}
        }
        return Bad;
      };
      expect(decorate).toThrow(InvalidOptionsError);
      expect(decorate).toThrow(/@Locked\(\) on Bad\.run: option `lockAtLeastFor` must be/);
      const fn = jest.fn();
      await expect(locks().using('k', fn, options)).rejects.toMatchObject({
        option: 'lockAtLeastFor',
      });
      expect(fn).not.toHaveBeenCalled();
    },
  );

  it('is refused by acquire() and tryAcquire(), which do not see the end of the work', async () => {
    const options = { lockAtLeastFor: 500 } as LockOptions;
    await expect(locks().acquire('k', options)).rejects.toThrow(InvalidOptionsError);
    await expect(locks().tryAcquire('k', options)).rejects.toThrow(
      /LockService\.tryAcquire\(\): option `lockAtLeastFor` is not available here/,
    );
    expect(await bed.observer.exists('lock:{k}')).toBe(0);
  });
});

describe('lockAtLeastFor with Redlock', () => {
  // Three masters for the quorum, and a fourth for the module's own connection.
  const bed = useRedisServers(4);
  let apps: INestApplication[] = [];
  let observers: Redis[] = [];
  let expiries: Expiries[] = [];
  beforeAll(async () => {
    const masters = bed.servers.slice(0, 3);
    const options = {
      connection: bed.servers[3]!.url,
      locks: { redlock: { connections: masters.map((m) => m.url) } },
    };
    apps = [
      await createTestApp({ options, providers: [Jobs] }),
      await createTestApp({ options, providers: [Jobs] }),
    ];
    observers = masters.map((m) => new Redis(m.url));
    expiries = await Promise.all(masters.map((m, i) => Expiries.open(m.url, observers[i]!)));
  });
  bed.beforeStop(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await Promise.all([...expiries.map((e) => e.close()), ...observers.map((o) => o.quit())]);
  });

  it('cuts the lease on every master to what remains, and the lock expires by itself on each', async () => {
    const [here, elsewhere] = apps.map((app) => app.get(Jobs));
    const token = await here!.fast();
    const expired = expiries.map((e) => e.next(JOB_KEY));
    for (const observer of observers) {
      const pttl = await observer.pttl(JOB_KEY);
      expect(pttl).toBeGreaterThan(0);
      // The key ttl of a 500 ms lease, with Redlock's allowance for clock drift.
      expect(pttl).toBeLessThanOrEqual(510);
    }
    expect(await elsewhere!.fast()).toBeUndefined();
    expect(elsewhere!.runs).toBe(0);
    await Promise.all(expired);
    const expiredAgain = expiries.map((e) => e.next(JOB_KEY));
    expect(await elsewhere!.fast()).toBeGreaterThan(token);
    await Promise.all(expiredAgain);
    for (const observer of observers) expect(await observer.keys('lock:{*')).toEqual([]);
  });
});
