import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Injectable, type INestApplication } from '@nestjs/common';
import fc from 'fast-check';
import { Cluster, Redis } from 'ioredis';
import {
  channelNames,
  InvalidOptionsError,
  type LockAcquireEvent,
  LockNotAcquiredError,
  LockService,
  Locked,
  RedisTxModule,
  type RedisTxModuleOptions,
} from '../../lib/index.js';
import { driftMs, keyTtlMs, quorumOf, validityMs } from '../../lib/locks/redlock/redlock.quorum.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';
import { useRedisServers } from '../support/redis.js';

describe('Redlock arithmetic', () => {
  it('needs more than half of the masters', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(quorumOf)).toEqual([1, 2, 2, 3, 3, 4, 4]);
  });

  it('takes the elapsed time and the clock drift off the key ttl', () => {
    expect(driftMs(10_000, 0.01)).toBe(102);
    expect(validityMs(10_000, 100, 0.01)).toBe(9_798);
    expect(validityMs(1_000, 999, 0)).toBe(-1);
  });

  it('gives the keys a ttl that leaves the holder at least the lease it asked for', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        fc.double({ min: 0, max: 0.49, noNaN: true }),
        (leaseMs, elapsedMs, drift) => {
          const ttl = keyTtlMs(leaseMs, drift);
          expect(validityMs(ttl, elapsedMs, drift)).toBeGreaterThanOrEqual(
            leaseMs - elapsedMs - 1e-6,
          );
          // …and not much more: the drift allowance, rounded up to a whole millisecond.
          expect(validityMs(ttl, elapsedMs, drift)).toBeLessThanOrEqual(leaseMs - elapsedMs + 1);
        },
      ),
    );
  });
});

/** A read-modify-write that loses updates unless the lock excludes the others. */
async function unsafeIncrement(redis: Redis, key: string): Promise<void> {
  const value = Number(await redis.get(key));
  await new Promise((resolve) => setImmediate(resolve));
  await redis.set(key, String(value + 1));
}

@Injectable()
class Jobs {
  constructor(readonly locks: LockService) {}

  @Locked((id: string) => `job:${id}`, { ttlMs: 2_000 })
  async run(id: string, nested: boolean): Promise<number> {
    const token = this.locks.current(`job:${id}`)!.fencingToken;
    // Re-entry in the same call chain must not wait on itself.
    return nested ? this.run(id, false) : token;
  }
}

describe('Redlock: locks by quorum over 5 independent masters', () => {
  const bed = useRedisServers(5);
  let observers: Redis[];
  let first: INestApplication;
  let second: INestApplication;
  const options = (locks: RedisTxModuleOptions['locks'] = {}): RedisTxModuleOptions => ({
    // The main connection serves transactions only; every lock goes to the masters.
    connection: bed.servers[0]!.url,
    locks: {
      ttlMs: 2_000,
      ...locks,
      redlock: { connections: bed.servers.map((s) => s.url), ...locks.redlock },
    },
  });
  const holders = async (name: string) =>
    (await Promise.all(observers.map((o) => o.exists(`lock:{${name}}`)))).reduce((a, b) => a + b);

  beforeAll(async () => {
    observers = bed.servers.map((s) => new Redis(s.url));
    first = await createTestApp({ options: options(), providers: [Jobs] });
    second = await createTestApp({ options: options() });
  });
  bed.beforeStop(async () => {
    await first?.close();
    await second?.close();
    await Promise.all((observers ?? []).map((o) => o.quit()));
  });
  beforeEach(async () => {
    await Promise.all(observers.map((o) => o.flushall()));
  });
  afterEach(async () => {
    // Every test releases what it took: no lock key may be left on any master.
    expect((await Promise.all(observers.map((o) => o.keys('lock:{*')))).flat()).toEqual([]);
  });

  it('excludes: 8 workers in two applications keep a read-modify-write counter exact', async () => {
    const services = [first.get(LockService), second.get(LockService)];
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = 0; i < 8; i++) {
          await services[worker % 2]!.using(
            'counter',
            () => unsafeIncrement(observers[0]!, 'counter'),
            { waitMs: 20_000 },
          );
        }
      }),
    );
    expect(await observers[0]!.get('counter')).toBe('64');
  });

  it('sets the key on the masters while held and removes it from every one on release', async () => {
    const lock = await first.get(LockService).acquire('where');
    expect(await holders('where')).toBeGreaterThanOrEqual(3);
    expect(await second.get(LockService).isLocked('where')).toBe(true);
    expect(await lock.release()).toBe(true);
    expect(await holders('where')).toBe(0);
    expect(await second.get(LockService).isLocked('where')).toBe(false);
    expect(await lock.release()).toBe(false);
  });

  it('is a try-lock with waitMs 0 across applications, and tryAcquire answers null when busy', async () => {
    const held = await first.get(LockService).acquire('busy');
    try {
      await expect(second.get(LockService).acquire('busy', { waitMs: 0 })).rejects.toThrow(
        LockNotAcquiredError,
      );
      expect(await second.get(LockService).tryAcquire('busy')).toBeNull();
    } finally {
      await held.release();
    }
    const next = await second.get(LockService).acquire('busy', { waitMs: 0 });
    await next.release();
  });

  it('gives increasing fencing tokens to successive holders in both applications', async () => {
    const tokens: number[] = [];
    for (let i = 0; i < 6; i++) {
      const lock = await [first, second][i % 2]!.get(LockService).acquire('fenced');
      tokens.push(lock.fencingToken);
      await lock.release();
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
  });

  it('wakes a waiter through the release message, long before its own retry timer', async () => {
    const app = await createTestApp({ options: options({ pollMs: 60_000 }) });
    const events: LockAcquireEvent[] = [];
    const listener = (event: unknown) => events.push(event as LockAcquireEvent);
    subscribe(channelNames.lockAcquire, listener);
    try {
      const holder = await first.get(LockService).acquire('wake');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = app.get(LockService).acquire('wake', { waitMs: 30_000 });
      await waitAnnounced; // subscribed and waiting: release now
      await holder.release();
      const lock = await waiting;
      expect(events.at(-1)).toMatchObject({ keys: ['wake'], wokenBy: 'release' });
      expect(lock.fencingToken).toBeGreaterThan(holder.fencingToken);
      await lock.release();
    } finally {
      unsubscribe(channelNames.lockAcquire, listener);
      await app.close();
    }
  });

  it('runs @Locked methods under Redlock, re-entrant within one call chain', async () => {
    const token = await first.get(Jobs).run('7', true);
    expect(token).toBeGreaterThan(0);
    expect(await first.get(LockService).isLocked('job:7')).toBe(false);
  });

  it('refuses read locks and semaphores: Redlock locks are exclusive', async () => {
    const locks = first.get(LockService);
    for (const call of [
      () => locks.acquire('r', { mode: 'read' }),
      () => locks.using('s', () => undefined, { permits: 2 }),
    ]) {
      const error: unknown = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(/locks\.redlock.*exclusive/);
    }
  });

  it('on close, releases the Redlock locks it holds and closes every connection it made, but not a given instance', async () => {
    const given = new Redis(bed.servers[4]!.url);
    const clients = () =>
      Promise.all(observers.map(async (o) => (await o.client('LIST')) as string));
    const count = async () => (await clients()).map((list) => list.trim().split('\n').length);
    const before = await count();
    const app = await createTestApp({
      options: {
        connection: bed.servers[0]!.url,
        locks: {
          ttlMs: 60_000,
          redlock: { connections: [...bed.servers.slice(0, 4).map((s) => s.url), given] },
        },
      },
    });
    const locks = app.get(LockService);
    await locks.acquire('kept');
    // A wait subscribes on every master, so the subscribers are closed too.
    const foreign = await first.get(LockService).acquire('foreign');
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = locks.acquire('foreign', { waitMs: 60_000 }).catch((e: unknown) => e);
    await waitAnnounced;
    await app.close();
    expect(await waiting).toBeInstanceOf(LockNotAcquiredError);
    expect(await holders('kept')).toBe(0);
    expect(given.status).toBe('ready');
    await given.quit();
    expect(await count()).toEqual(before);
    await foreign.release();
  });
});

describe('Redlock options', () => {
  const url = (port: number) => `redis://127.0.0.1:${port}`;
  const rejected = (redlock: unknown): InvalidOptionsError => {
    try {
      RedisTxModule.forRoot({
        connection: url(1),
        locks: { redlock: redlock as never },
      });
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidOptionsError);
      return error as InvalidOptionsError;
    }
    throw new Error('forRoot accepted the options');
  };

  it('needs at least 3 masters, and says why', () => {
    const error = rejected({ connections: [url(1), url(2)] });
    expect(error.option).toBe('locks.redlock.connections');
    expect(error.message).toMatch(/at least 3.*got 2.*loss of a single master/);
  });

  it('refuses a Cluster, which is no single master', () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    try {
      expect(rejected({ connections: [url(1), cluster, url(3)] }).option).toBe(
        'locks.redlock.connections[1]',
      );
    } finally {
      cluster.disconnect();
    }
    expect(
      rejected({ connections: [url(1), url(2), { cluster: [{ host: '127.0.0.1', port: 3 }] }] })
        .option,
    ).toBe('locks.redlock.connections[2]');
  });

  it('refuses one server listed twice, and something that is no connection', () => {
    const twice = rejected({ connections: [url(1), url(2), { host: '127.0.0.1', port: 1 }] });
    expect(twice.option).toBe('locks.redlock.connections[2]');
    expect(twice.message).toMatch(/same Redis server as `locks\.redlock\.connections\[0\]`/);
    expect(rejected({ connections: [url(1), url(2), 42] }).option).toBe(
      'locks.redlock.connections[2]',
    );
  });

  it.each([0.5, -0.1, Number.NaN, '0.01'])('refuses a clock drift factor of %p', (factor) => {
    const error = rejected({ connections: [url(1), url(2), url(3)], clockDriftFactor: factor });
    expect(error.option).toBe('locks.redlock.clockDriftFactor');
  });
});
