import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { type Lock, Locked, LockService, RedisTx, ShuttingDownError } from '../../lib/index.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';

/** Resolves when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(), { once: true }),
  );
}

/** What a holder saw when told to stop: why, and whether its key was still in Redis then. */
interface Stopped {
  reason: unknown;
  keyStillThere: number;
}

/** Stops when its signal aborts, and first looks at its key with a connection of its own. */
@Injectable()
class Job {
  entered!: () => void;
  stopped?: Stopped;
  observer!: Redis;

  @Locked('job', { ttlMs: 60_000 })
  async run(lock?: Lock): Promise<void> {
    const signal = lock?.signal ?? this.locks.current('job')!.signal;
    this.entered();
    await aborted(signal);
    this.stopped = {
      reason: signal.reason,
      keyStillThere: await this.observer.exists('lock:{job}'),
    };
  }

  constructor(private readonly locks: LockService) {}
}

describe('app.close() with lock holders still running', () => {
  const bed = useRedisServer();
  let observer: Redis;
  beforeAll(() => {
    observer = new Redis(bed.server.url);
  });
  bed.beforeStop(() => observer.quit());
  beforeEach(() => observer.flushall());

  it('aborts a running using() holder with ShuttingDownError, lets it finish, then the key is gone', async () => {
    const app = await createTestApp({ options: { connection: bed.server.url } });
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let stopped: Stopped | undefined;
    const running = app.get(LockService).using(
      'work',
      async (lock) => {
        entered();
        await aborted(lock.signal);
        stopped = {
          reason: lock.signal.reason,
          keyStillThere: await observer.exists('lock:{work}'),
        };
      },
      { ttlMs: 60_000 },
    );
    await inside;

    await app.close();

    expect(stopped?.reason).toBeInstanceOf(ShuttingDownError);
    // Told to stop while it still held the lock: nobody else could have it yet.
    expect(stopped?.keyStillThere).toBe(1);
    await running;
    expect(await observer.exists('lock:{work}')).toBe(0);
  });

  it('aborts a running @Locked method the same way', async () => {
    const app = await createTestApp({
      options: { connection: bed.server.url },
      providers: [Job],
    });
    const job = app.get(Job);
    job.observer = observer;
    const inside = new Promise<void>((resolve) => (job.entered = resolve));
    const running = job.run();
    await inside;

    await app.close();

    expect(job.stopped?.reason).toBeInstanceOf(ShuttingDownError);
    expect(job.stopped?.keyStillThere).toBe(1);
    await running;
    expect(await observer.exists('lock:{job}')).toBe(0);
  });

  it('lets a holder told to stop still commit its transaction, while one started elsewhere is refused', async () => {
    const app = await createTestApp({ options: { connection: bed.server.url } });
    const redis = app.get(RedisTx);
    let toldToStop!: () => void;
    const stopping = new Promise<void>((resolve) => (toldToStop = resolve));
    let goOn!: () => void;
    const mayGoOn = new Promise<void>((resolve) => (goOn = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const running = app.get(LockService).using(
      'account',
      async (lock) => {
        entered();
        await aborted(lock.signal);
        toldToStop();
        await mayGoOn;
        // Work the shutdown waits for: what it does under the lock still lands.
        await redis.run(() => {
          redis.multi.set('account:balance', '10').incr('account:version');
        });
      },
      { ttlMs: 60_000 },
    );
    await inside;

    const closing = app.close();
    await stopping;
    // Not inside the holder: new work, refused as shutdown promises.
    const elsewhere = await redis
      .run(() => {
        redis.multi.set('elsewhere', '1');
      })
      .catch((error: unknown) => error);
    goOn();
    await running;
    await closing;

    expect(elsewhere).toBeInstanceOf(ShuttingDownError);
    expect(await observer.mget('account:balance', 'account:version', 'elsewhere')).toEqual([
      '10',
      '1',
      null,
    ]);
    expect(await observer.exists('lock:{account}')).toBe(0);
  });

  it('releases a lock held re-entrantly (using inside using) once, though its holder does not stop', async () => {
    // The holder ignores its signal: after shutdownTimeoutMs the module releases what is left.
    const app = await createTestApp({
      options: { connection: bed.server.url, shutdownTimeoutMs: 100 },
    });
    const locks = app.get(LockService);
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const running = locks.using(
      'nested',
      () =>
        locks.using('nested', async () => {
          entered();
          await finished;
        }),
      { ttlMs: 60_000 },
    );
    await inside;

    await app.close();

    expect(await observer.exists('lock:{nested}')).toBe(0);
    finish();
    await running;
  });
});
