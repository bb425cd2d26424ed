import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis } from 'ioredis';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  channelNames,
  RedisTx,
  RedisTxError,
  Transactional,
  TransactionAbortedError,
  TransactionCrossSlotError,
  TransactionOutcomeUnknownError,
} from '../../lib/index.js';
import { useRedisCluster } from '../support/cluster.js';
import { createTestApp } from '../support/nest-app.js';

@Injectable()
class Accounts {
  constructor(readonly redis: RedisTx) {}

  @Transactional()
  async open(id: string, amount: number) {
    this.redis.multi.set(`{acct:${id}}:a`, amount).set(`{acct:${id}}:b`, 0);
  }

  @Transactional({ watch: (id: string) => [`{acct:${id}}:a`, `{acct:${id}}:b`], retries: 200 })
  async move(id: string, amount: number) {
    const [a, b] = await this.redis.client.mget(`{acct:${id}}:a`, `{acct:${id}}:b`);
    this.redis.multi
      .set(`{acct:${id}}:a`, Number(a) - amount)
      .set(`{acct:${id}}:b`, Number(b) + amount);
  }

  /** A read-modify-write that stays exact only because of WATCH. */
  @Transactional({ watch: (key: string) => [key], retries: 200 })
  async increment(key: string) {
    const value = Number(await this.redis.client.get(key));
    this.redis.multi.set(key, value + 1);
  }

  @Transactional()
  async crossSlot() {
    this.redis.multi.set('user:1', 'x').set('user:2', 'y');
  }

  @Transactional({ watch: ['order:1', 'order:2'] })
  async crossSlotWatch() {
    this.redis.multi.incr('order:1');
  }

  @Transactional({ watch: ['{pinned}:a'] })
  async queuesOutsideItsSlot() {
    this.redis.multi.incr('{pinned}:a').incr('elsewhere');
  }

  readsElsewhereAttempts = 0;

  /** Reads a key of another master on the connection pinned to `{pinned}`'s master. */
  @Transactional({ watch: ['{pinned}:a'], retries: 5 })
  async readsElsewhere(key: string) {
    this.readsElsewhereAttempts++;
    await this.redis.client.get(key);
    this.redis.multi.incr('{pinned}:a');
  }

  @Transactional()
  async plainIncrement(key: string) {
    this.redis.multi.incr(key);
  }
}

/** Calls of one command on each master, from INFO commandstats. */
async function calls(masters: Redis[], command: string): Promise<number[]> {
  return Promise.all(
    masters.map(async (master) => {
      const stats = await master.info('commandstats');
      return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    }),
  );
}

describe('transactions on Redis Cluster', () => {
  const bed = useRedisCluster();
  let app: INestApplication;
  let observer: Cluster;
  const accounts = () => app.get(Accounts);

  beforeAll(async () => {
    observer = new Cluster(bed.cluster.startupNodes, { lazyConnect: true });
    await observer.connect();
    app = await createTestApp({
      options: { connection: { cluster: bed.cluster.startupNodes } },
      providers: [Accounts],
    });
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });

  beforeEach(async () => {
    await Promise.all(observer.nodes('master').map((node) => node.flushall()));
  });

  /** Direct connections to the three masters, for their command statistics. */
  async function withMasters<T>(fn: (masters: Redis[]) => Promise<T>): Promise<T> {
    const masters = observer.nodes('master').map((node) => new Redis(node.options.port!));
    try {
      await Promise.all(masters.map((master) => master.config('RESETSTAT')));
      return await fn(masters);
    } finally {
      await Promise.all(masters.map((master) => master.quit()));
    }
  }

  it('commits a plain transaction whose keys share a hash tag', async () => {
    await accounts().open('7', 100);
    expect(await observer.mget('{acct:7}:a', '{acct:7}:b')).toEqual(['100', '0']);
  });

  it('runs WATCH transactions on the slot’s master: 30 concurrent increments end at exactly 30', async () => {
    const key = '{counter}:value';
    const owner = await bed.cluster.masterForKey(key);
    await withMasters(async (masters) => {
      await Promise.all(Array.from({ length: 30 }, () => accounts().increment(key)));
      expect(await observer.get(key)).toBe('30');
      const watches = await calls(masters, 'watch');
      const ownerIndex = masters.findIndex((m) => m.options.port === owner.port);
      // Every WATCH went to the owner of the slot, none elsewhere.
      expect(watches[ownerIndex]).toBeGreaterThanOrEqual(30);
      expect(watches.reduce((a, b) => a + b, 0)).toBe(watches[ownerIndex]);
    });
  });

  it('moves money between two keys of one slot under WATCH, keeping the sum', async () => {
    await accounts().open('9', 1_000);
    await Promise.all(Array.from({ length: 20 }, () => accounts().move('9', 5)));
    expect(await observer.mget('{acct:9}:a', '{acct:9}:b')).toEqual(['900', '100']);
  });

  it('refuses keys of several slots before anything is sent, naming keys, slots and a hash tag', async () => {
    await withMasters(async (masters) => {
      const error: unknown = await accounts()
        .crossSlot()
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionCrossSlotError);
      expect(error).toBeInstanceOf(TransactionAbortedError);
      const { message, keys } = error as TransactionCrossSlotError;
      expect(keys).toEqual([
        { key: 'user:1', slot: calculateSlot('user:1') },
        { key: 'user:2', slot: calculateSlot('user:2') },
      ]);
      expect(message).toContain(`"user:1" is in slot ${calculateSlot('user:1')}`);
      expect(message).toContain(`"user:2" is in slot ${calculateSlot('user:2')}`);
      expect(message).toMatch(/hash tag, e\.g\. "\{user:42\}/);

      await expect(accounts().crossSlotWatch()).rejects.toThrow(TransactionCrossSlotError);
      await expect(accounts().queuesOutsideItsSlot()).rejects.toThrow(TransactionCrossSlotError);

      for (const command of ['multi', 'exec', 'set', 'incr']) {
        expect(await calls(masters, command)).toEqual([0, 0, 0]);
      }
      // The WATCH-pinned one did watch its own key: only its queue was refused.
      expect((await calls(masters, 'watch')).reduce((a, b) => a + b, 0)).toBe(1);
      expect(await observer.exists('user:1')).toBe(0);
      expect(await observer.exists('order:1')).toBe(0);
    });
  });

  it('lets a WATCH method’s read of another master’s key fail as it is, not as a conflict', async () => {
    const pinnedOwner = await bed.cluster.masterForKey('{pinned}:a');
    let elsewhere = 'elsewhere:0';
    for (let i = 1; (await bed.cluster.masterForKey(elsewhere)).port === pinnedOwner.port; i++) {
      elsewhere = `elsewhere:${i}`;
    }
    accounts().readsElsewhereAttempts = 0;
    await expect(accounts().readsElsewhere(elsewhere)).rejects.toThrow(/^MOVED \d+ /);
    expect(accounts().readsElsewhereAttempts).toBe(1);
    expect(await observer.get('{pinned}:a')).toBeNull();
  });

  /**
   * Four workers run WATCH and plain INCR transactions on one slot until 20
   * have completed after `disrupt()` resolves (bounded by 20 s and 20 000
   * rounds each), then the counters are compared with the successes each
   * worker saw.
   */
  async function incrementsAcross(slotKey: string, disrupt: () => Promise<unknown>) {
    const watched = `{${slotKey}}:watched`;
    const plain = `{${slotKey}}:plain`;
    let watchedOk = 0;
    let plainOk = 0;
    const failures: Error[] = [];
    let disrupted = false;
    let after = 0;
    const conflicts: unknown[] = [];
    const onConflict = (event: unknown) => conflicts.push(event);
    subscribe(channelNames.transactionConflict, onConflict);
    const deadline = Date.now() + 20_000;
    const worker = async (index: number) => {
      for (let round = 0; round < 20_000 && after < 20 && Date.now() < deadline; round++) {
        try {
          if (index % 2) {
            await accounts().increment(watched);
            watchedOk++;
          } else {
            await accounts().plainIncrement(plain);
            plainOk++;
          }
          if (disrupted) after++;
        } catch (error) {
          failures.push(error as Error);
        }
      }
    };
    try {
      const workers = Promise.all([0, 1, 2, 3].map(worker));
      await disrupt();
      disrupted = true;
      await workers;
    } finally {
      unsubscribe(channelNames.transactionConflict, onConflict);
    }
    return {
      watched: { ok: watchedOk, value: Number(await observer.get(watched)) },
      plain: { ok: plainOk, value: Number(await observer.get(plain)) },
      failures,
      conflicts: conflicts.length,
      after,
    };
  }

  it('survives a graceful failover of the slot’s master: every transaction applied exactly once', async () => {
    const master = await bed.cluster.masterForKey('{graceful}');
    let promoted: { port: number } | undefined;
    const run = await incrementsAcross('graceful', async () => {
      promoted = await bed.cluster.failover(master);
    });
    expect((await bed.cluster.masterForKey('{graceful}')).port).toBe(promoted!.port);
    expect(run.after).toBeGreaterThanOrEqual(20);
    // The old master answers MOVED: nothing is lost, nothing applied twice, nothing fails.
    expect(run.failures).toEqual([]);
    expect(run.watched.value).toBe(run.watched.ok);
    expect(run.plain.value).toBe(run.plain.ok);
  });

  it('survives connections cut mid-transaction during a failover: each applied at most once, failures typed', async () => {
    const master = await bed.cluster.masterForKey('{cut}');
    const admin = new Redis(master.port);
    try {
      const run = await incrementsAcross('cut', async () => {
        // Every client connection to the master drops at once, EXECs in flight included.
        await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
        await bed.cluster.failover(master);
      });
      expect(run.after).toBeGreaterThanOrEqual(20);
      for (const failure of run.failures) expect(failure).toBeInstanceOf(RedisTxError);
      // A reply lost with its connection leaves the outcome unknown; any other failure applied nothing.
      const unknown = run.failures.filter(
        (f) => f instanceof TransactionOutcomeUnknownError,
      ).length;
      expect(run.watched.value).toBeGreaterThanOrEqual(run.watched.ok);
      expect(run.plain.value).toBeGreaterThanOrEqual(run.plain.ok);
      expect(run.watched.value + run.plain.value).toBeLessThanOrEqual(
        run.watched.ok + run.plain.ok + unknown,
      );
    } finally {
      await admin.quit();
    }
  });
});
