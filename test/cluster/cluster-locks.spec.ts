import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { INestApplication } from '@nestjs/common';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis } from 'ioredis';
import {
  channelNames,
  type LockAcquireEvent,
  LockNotAcquiredError,
  LockService,
  RedisTxError,
} from '../../lib/index.js';
import { useRedisCluster } from '../support/cluster.js';
import { nextEvent } from '../support/next-event.js';
import { createTestApp } from '../support/nest-app.js';

/** Every key on every master: a Cluster client's KEYS goes to one node only. */
async function allKeys(observer: Cluster, pattern: string): Promise<string[]> {
  const perNode = await Promise.all(observer.nodes('master').map((node) => node.keys(pattern)));
  return perNode.flat().sort();
}

/** A read-modify-write that loses updates unless the lock excludes the others. */
async function unsafeIncrement(observer: Cluster, key: string): Promise<void> {
  const value = Number(await observer.get(key));
  await new Promise((resolve) => setImmediate(resolve));
  await observer.set(key, String(value + 1));
}

describe('locks on Redis Cluster', () => {
  const bed = useRedisCluster();
  let first: INestApplication;
  let second: INestApplication;
  let observer: Cluster;
  const connection = () => ({ cluster: bed.cluster.startupNodes });

  beforeAll(async () => {
    observer = new Cluster(bed.cluster.startupNodes, { lazyConnect: true });
    // Resolves once the slot map is known, so nodes('master') names the masters.
    await observer.connect();
    // Two applications on the same Cluster: their own connections, their own tokens.
    first = await createTestApp({
      options: { connection: connection(), locks: { ttlMs: 3_000, pollMs: 60_000 } },
    });
    second = await createTestApp({
      options: { connection: connection(), locks: { ttlMs: 3_000, pollMs: 60_000 } },
    });
  });
  bed.beforeStop(async () => {
    await first?.close();
    await second?.close();
    await observer?.quit();
  });

  beforeEach(async () => {
    await Promise.all(observer.nodes('master').map((node) => node.flushall()));
  });

  afterEach(async () => {
    // Only the per-slot fencing counters outlive a lock, by design.
    const left = (await allKeys(observer, 'lock:*')).filter(
      (key) => !key.startsWith('lock:fence:'),
    );
    expect(left).toEqual([]);
  });

  const locks = (app: INestApplication) => app.get(LockService);

  it('excludes: workers of two applications keep a read-modify-write counter exact', async () => {
    const services = [locks(first), locks(second)];
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = 0; i < 8; i++) {
          await services[worker % 2]!.using(
            'counter',
            () => unsafeIncrement(observer, '{counter}:value'),
            { waitMs: 20_000 },
          );
        }
      }),
    );
    expect(await observer.get('{counter}:value')).toBe('64');
  });

  it('gives increasing fencing tokens per key from a counter in the lock’s own slot', async () => {
    const tokens: number[] = [];
    for (let i = 0; i < 6; i++) {
      const lock = await locks(i % 2 ? second : first).acquire('fenced');
      tokens.push(lock.fencingToken);
      await lock.release();
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    const fences = await allKeys(observer, 'lock:fence:*');
    expect(fences).toHaveLength(1);
    expect(calculateSlot(fences[0]!)).toBe(calculateSlot('lock:{fenced}'));
  });

  it('works on names spread over all three masters', async () => {
    const names = Array.from({ length: 30 }, (_, i) => `spread:${i}`);
    const owners = new Set(
      await Promise.all(
        names.map(async (name) => (await bed.cluster.masterForKey(`lock:{${name}}`)).port),
      ),
    );
    expect(owners.size).toBe(3);
    const held = await Promise.all(names.map((name) => locks(first).acquire(name, { waitMs: 0 })));
    for (const name of names) {
      await expect(locks(second).acquire(name, { waitMs: 0 })).rejects.toThrow(
        LockNotAcquiredError,
      );
    }
    const multi = held.slice(0, 3).map((lock) => lock.keys[0]!);
    await Promise.all(held.map((lock) => lock.release()));
    // A lock over names in different slots is taken all or none, one name at a time.
    await locks(second).using(multi, async (lock) => {
      expect([...lock.fencingTokens.keys()]).toEqual([...multi].sort());
    });
  });

  it('wakes a waiter through the sharded release message, long before the polling fallback', async () => {
    const events: LockAcquireEvent[] = [];
    const listener = (event: unknown) => events.push(event as LockAcquireEvent);
    subscribe(channelNames.lockAcquire, listener);
    try {
      for (const name of ['handoff:a', 'handoff:b', 'handoff:c']) {
        const holder = await locks(first).acquire(name);
        const waitAnnounced = nextEvent(channelNames.lockWait);
        const waiting = locks(second).acquire(name, { waitMs: 30_000 });
        await waitAnnounced;
        await holder.release();
        const lock = await waiting;
        // pollMs is 60 s: only the hand-off message can have woken it this soon.
        expect(events.at(-1)).toMatchObject({ keys: [name], wokenBy: 'release' });
        expect(lock.fencingToken).toBeGreaterThan(holder.fencingToken);
        await lock.release();
      }
    } finally {
      unsubscribe(channelNames.lockAcquire, listener);
    }
  });

  it('publishes hand-offs with SPUBLISH on the lock’s shard only, subscribed only while someone waits', async () => {
    const name = 'sharded';
    const owner = await bed.cluster.masterForKey(`lock:{${name}}`);
    const shard = [owner, ...(await bed.cluster.replicasOf(owner))];
    const others = bed.cluster.nodes.filter((node) => !shard.includes(node));
    const clients = [owner, ...others].map(
      (node) => new Redis({ host: node.host, port: node.port }),
    );
    const [ownerClient] = clients;
    const subscribed = async () => {
      const channels = (await ownerClient!.call(
        'PUBSUB',
        'SHARDCHANNELS',
        'lock:handoff:*',
      )) as string[];
      return channels.length;
    };
    try {
      await Promise.all(clients.map((client) => client.config('RESETSTAT')));
      const holder = await locks(first).acquire(name);
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const waiting = locks(second).acquire(name, { waitMs: 30_000 });
      await waitAnnounced;
      expect(await subscribed()).toBe(1);
      await holder.release();
      await (await waiting).release();
      const stats = await Promise.all(clients.map((client) => client.info('commandstats')));
      expect(stats[0]).toMatch(/cmdstat_ssubscribe:calls=1\b/);
      expect(stats[0]).toMatch(/cmdstat_spublish:calls=[1-9]/);
      expect(stats[0]).not.toMatch(/cmdstat_publish:/);
      for (const other of stats.slice(1))
        expect(other).not.toMatch(/cmdstat_s?(un)?(publish|subscribe):/);
      // SUNSUBSCRIBE is sent without waiting for it, and Redis announces nothing
      // to others when it lands: poll, bounded, until the channel is dropped.
      const deadline = Date.now() + 5_000;
      while ((await subscribed()) > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await subscribed()).toBe(0);
    } finally {
      await Promise.all(clients.map((client) => client.quit()));
    }
  });

  it('works on a Cluster client with a keyPrefix: hand-offs still reach the waiter', async () => {
    const options = {
      connection: { cluster: bed.cluster.startupNodes, options: { keyPrefix: 'app:' } },
      locks: { pollMs: 60_000 },
    };
    const [a, b] = await Promise.all([createTestApp({ options }), createTestApp({ options })]);
    try {
      const holder = await locks(a).acquire('prefixed');
      const waitAnnounced = nextEvent(channelNames.lockWait);
      const acquired = nextEvent<LockAcquireEvent>(channelNames.lockAcquire);
      const waiting = locks(b).acquire('prefixed', { waitMs: 30_000 });
      await waitAnnounced;
      expect(await allKeys(observer, 'app:lock:{prefixed}')).toEqual(['app:lock:{prefixed}']);
      await holder.release();
      const lock = await waiting;
      expect(await acquired).toMatchObject({ keys: ['prefixed'], wokenBy: 'release' });
      await lock.release();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    const left = await allKeys(observer, 'app:lock:*');
    expect(left.filter((key) => !key.startsWith('app:lock:fence:'))).toEqual([]);
  });

  it('survives a flushed script cache on every master, with and without a keyPrefix', async () => {
    const prefixedApp = await createTestApp({
      options: {
        connection: { cluster: bed.cluster.startupNodes, options: { keyPrefix: 'app:' } },
      },
    });
    try {
      const names = ['flush-a', 'flush-b', 'flush-c', 'flush-d'];
      const cycles = (app: INestApplication) =>
        Promise.all(
          names.map(async (name) => {
            const lock = await locks(app).acquire(name);
            expect(await lock.release()).toBe(true);
          }),
        );
      await Promise.all([cycles(first), cycles(prefixedApp)]);
      await Promise.all(observer.nodes('master').map((node) => node.script('FLUSH')));
      // Answered NOSCRIPT, so not run: sent again with their source.
      await Promise.all([cycles(first), cycles(prefixedApp)]);
      expect(await allKeys(observer, 'app:lock:{flush-*')).toEqual([]);
    } finally {
      await prefixedApp.close();
    }
    const left = await allKeys(observer, 'app:lock:*');
    expect(left.filter((key) => !key.startsWith('app:lock:fence:'))).toEqual([]);
  });

  it('survives a failover of the lock’s master: in-flight work ran once or failed typed, and locks work after', async () => {
    const name = 'failover';
    const counter = '{failover}:value';
    const master = await bed.cluster.masterForKey(`lock:{${name}}`);
    let ran = 0;
    const failures: unknown[] = [];
    let failedOver = false;
    let afterFailover = 0;
    const services = [locks(first), locks(second)];
    // A backstop only, counted from when the failover is done (how long the
    // failover itself takes on a busy machine is not what this checks).
    let deadline = Infinity;
    const worker = async (index: number) => {
      // Bounded: stops 20 locked runs after the failover, 20 s after it, or after 20 000 rounds.
      for (let round = 0; round < 20_000 && afterFailover < 20 && Date.now() < deadline; round++) {
        try {
          await services[index % 2]!.using(
            name,
            async () => {
              ran++;
              await unsafeIncrement(observer, counter);
            },
            { waitMs: 10_000 },
          );
          if (failedOver) afterFailover++;
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const workers = Promise.all([0, 1, 2, 3].map(worker));
    const promoted = await bed.cluster.failover(master);
    failedOver = true;
    deadline = Date.now() + 20_000;
    await workers;

    expect(promoted.port).not.toBe(master.port);
    expect((await bed.cluster.masterForKey(`lock:{${name}}`)).port).toBe(promoted.port);
    expect(afterFailover).toBeGreaterThanOrEqual(20);
    // Exclusion held throughout: no increment was lost, none was applied twice.
    expect(Number(await observer.get(counter))).toBe(ran);
    for (const failure of failures) expect(failure).toBeInstanceOf(RedisTxError);

    // And the hand-off still wakes a waiter on the new master.
    const holder = await locks(first).acquire(name);
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const acquired = nextEvent<LockAcquireEvent>(channelNames.lockAcquire);
    const waiting = locks(second).acquire(name, { waitMs: 30_000 });
    await waitAnnounced;
    await holder.release();
    const lock = await waiting;
    expect(await acquired).toMatchObject({ keys: [name], wokenBy: 'release' });
    expect(lock.fencingToken).toBeGreaterThan(holder.fencingToken);
    await lock.release();
  });
});
