import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { LockService } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { createTestApp } from '../support/nest-app.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

/** How many times the server ran each scripting command since the last CONFIG RESETSTAT. */
async function scriptCalls(observer: Redis): Promise<{ eval: number; evalsha: number }> {
  const stats = await observer.info('commandstats');
  const calls = (name: string) =>
    Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
  return { eval: calls('eval'), evalsha: calls('evalsha') };
}

const cycle = async (locks: LockService, name: string) => {
  const lock = await locks.acquire(name);
  expect(lock.fencingToken).toBeGreaterThan(0);
  expect(await lock.release()).toBe(true);
};

describe('lock scripts sent by digest', () => {
  const bed = useAppWithRedis({});
  useUnhandledRejections();
  let prefixed: INestApplication;
  beforeAll(async () => {
    const connection = { host: bed.server.host, port: bed.server.port, keyPrefix: 'app:' };
    prefixed = await createTestApp({ options: { connection } });
  });
  bed.beforeStop(async () => {
    await prefixed?.close();
  });

  it('runs an acquisition and a release as EVALSHA once a connection has loaded them', async () => {
    const locks = bed.app.get(LockService);
    await cycle(locks, 'warm');
    await bed.observer.config('RESETSTAT');
    for (let i = 0; i < 3; i++) await cycle(locks, 'digest');
    expect(await scriptCalls(bed.observer)).toEqual({ eval: 0, evalsha: 6 });
  });

  it('survives a flushed script cache, sending the source again once per script', async () => {
    const locks = bed.app.get(LockService);
    await cycle(locks, 'warm');
    await bed.observer.script('FLUSH');
    await bed.observer.config('RESETSTAT');
    await cycle(locks, 'flushed');
    // Each EVALSHA was answered NOSCRIPT (the script did not run), then sent as EVAL.
    expect(await scriptCalls(bed.observer)).toEqual({ eval: 2, evalsha: 2 });
    await cycle(locks, 'flushed');
    expect(await scriptCalls(bed.observer)).toEqual({ eval: 2, evalsha: 4 });
    expect(await bed.observer.keys('lock:{flushed}*')).toEqual([]);
  });

  it('prefixes the keys with ioredis’s keyPrefix exactly once, by digest and after a flush', async () => {
    const locks = prefixed.get(LockService);
    await cycle(locks, 'warm');
    await bed.observer.script('FLUSH');
    const lock = await locks.acquire('p');
    expect((await bed.observer.keys('*')).sort()).toEqual(['app:lock:fence', 'app:lock:{p}']);
    expect(await lock.extend(5_000)).toBe(true);
    expect(await lock.release()).toBe(true);
    await bed.observer.config('RESETSTAT');
    await cycle(locks, 'p');
    expect(await scriptCalls(bed.observer)).toEqual({ eval: 0, evalsha: 2 });
    expect(await bed.observer.keys('*')).toEqual(['app:lock:fence']);
  });
});
