import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  channelNames,
  InvalidOptionsError,
  Locked,
  LockNotAcquiredError,
  LockService,
  RedisTxModule,
  type LockAcquireEvent,
} from '../../lib/index.js';
import { lockRedisKeys } from '../../lib/locks/lock-keys.js';
import { ask, type RedisServer } from '../../tools/redis-server.js';
import { nextEvent } from '../support/next-event.js';
import { createTestApp } from '../support/nest-app.js';
import { useReplicatedRedis } from '../support/sentinel.js';

const writerKey = (name: string) => lockRedisKeys('lock:', name).writer;

/** Set by the test that calls the @Locked method: where the method looks for its own lock. */
let replicaForJob: Redis | undefined;

// A healthy replica acknowledges within a millisecond or so; the default 100 ms
// could run out on a loaded test machine, which is not what these tests are about.
const generous = 5_000;

@Injectable()
class AcknowledgedJob {
  /** Reads its own lock key on the replica while holding it. */
  @Locked((id: string) => `job:${id}`, { replicaAcks: 1, replicaAckTimeoutMs: generous })
  async run(id: string): Promise<string | null> {
    return replicaForJob!.get(writerKey(`job:${id}`));
  }
}

describe('LockService with replicaAcks (Redis WAIT)', () => {
  // Plain replication: WAIT needs replicas, not Sentinel.
  const bed = useReplicatedRedis({ replicas: 1, sentinels: 0 });
  let app: INestApplication;
  let master: RedisServer;
  let replica: RedisServer;
  let onMaster: Redis;
  let onReplica: Redis;
  const locks = () => app.get(LockService);

  beforeAll(async () => {
    [master, replica] = bed.redis.servers as [RedisServer, RedisServer];
    onMaster = new Redis(master.url);
    onReplica = new Redis(replica.url);
    app = await createTestApp({
      options: { connection: master.url, locks: { ttlMs: 60_000 } },
      providers: [AcknowledgedJob],
    });
  });
  bed.beforeStop(async () => {
    await app?.close();
    onMaster?.disconnect();
    onReplica?.disconnect();
  });
  afterEach(async () => {
    expect((await onMaster.keys('lock:*')).filter((key) => key !== 'lock:fence')).toEqual([]);
  });

  it('returns the lock only once the replica has it', async () => {
    const lock = await locks().acquire('acked', { replicaAcks: 1, replicaAckTimeoutMs: generous });
    try {
      // Asked of the replica directly, right after acquire returned.
      expect(await onReplica.get(writerKey('acked'))).toBe(await onMaster.get(writerKey('acked')));
      expect(await onReplica.get(writerKey('acked'))).not.toBeNull();
    } finally {
      await lock.release();
    }
  });

  it('has a lock handed over on release acknowledged too, by renewing it on its own connection', async () => {
    const holder = await locks().acquire('handed');
    const acquired: LockAcquireEvent[] = [];
    const onAcquire = (event: unknown) => acquired.push(event as LockAcquireEvent);
    subscribe(channelNames.lockAcquire, onAcquire);
    try {
      // Announced once the waiter stands in line and listens for the hand-off:
      // released any sooner, on a busy machine, the waiter would find the lock
      // already in its name on its next try instead of being woken.
      const waiting = nextEvent(channelNames.lockWait);
      const waiter = locks().acquire('handed', {
        replicaAcks: 1,
        replicaAckTimeoutMs: generous,
        waitMs: 5_000,
      });
      await waiting;
      await queuedOnMaster('handed');
      await holder.release();
      const lock = await waiter;
      expect(await onReplica.get(writerKey('handed'))).not.toBeNull();
      await lock.release();
    } finally {
      unsubscribe(channelNames.lockAcquire, onAcquire);
    }
    expect(acquired.at(-1)).toMatchObject({ keys: ['handed'], wokenBy: 'release' });
  });

  it('works on @Locked: the method runs holding a lock the replica already has', async () => {
    replicaForJob = onReplica;
    await expect(app.get(AcknowledgedJob).run('7')).resolves.not.toBeNull();
  });

  it('rejects bad replicaAcks and replicaAckTimeoutMs with InvalidOptionsError before sending anything', async () => {
    const scriptCallsBefore = await scriptCalls(master);
    for (const replicaAcks of [-1, 1.5, Number.NaN, '1']) {
      const options = { replicaAcks } as unknown as { replicaAcks: number };
      await expect(locks().acquire('bad-options', options)).rejects.toMatchObject({
        constructor: InvalidOptionsError,
        option: 'replicaAcks',
      });
    }
    for (const replicaAckTimeoutMs of [0, 1.5, Number.NaN, '100']) {
      const options = { replicaAcks: 1, replicaAckTimeoutMs } as unknown as { replicaAcks: number };
      await expect(locks().acquire('bad-options', options)).rejects.toMatchObject({
        constructor: InvalidOptionsError,
        option: 'replicaAckTimeoutMs',
      });
    }
    expect(await scriptCalls(master)).toEqual(scriptCallsBefore);
  });

  it('rejects a bad module-wide default, and replicaAcks with Redlock, at bootstrap', async () => {
    // async: forRoot throws at once, and every case must reject.
    const bootstrap = async (locksOptions: object, connection: unknown = master.url) =>
      Test.createTestingModule({
        imports: [
          RedisTxModule.forRoot({
            connection: connection as string,
            locks: locksOptions,
          }),
        ],
      }).compile();
    await expect(bootstrap({ replicaAcks: -1 })).rejects.toMatchObject({
      option: 'locks.replicaAcks',
    });
    await expect(bootstrap({ replicaAckTimeoutMs: 0 })).rejects.toMatchObject({
      option: 'locks.replicaAckTimeoutMs',
    });
    const redlock = {
      connections: ['redis://127.0.0.1:1', 'redis://127.0.0.1:2', 'redis://127.0.0.1:3'],
    };
    await expect(bootstrap({ replicaAcks: 1, redlock })).rejects.toThrow(
      /not available with `locks.redlock`/,
    );
  });

  it('fails closed with the replica frozen: the lock is released at once, and other locks do not wait behind the WAIT', async () => {
    const timeoutMs = 2_000;
    replica.pause();
    try {
      const settled: string[] = [];
      const acquiring = locks()
        .acquire('frozen', { replicaAcks: 1, replicaAckTimeoutMs: timeoutMs })
        .finally(() => settled.push('acknowledged lock'));
      acquiring.catch(() => undefined);
      await waitBlockedOn(master);
      // A plain lock of the same module, while that WAIT blocks its connection.
      const plain = await locks().acquire('unrelated');
      settled.push('plain lock');
      await plain.release();

      const error = await acquiring.catch((e: unknown) => e);
      expect(settled).toEqual(['plain lock', 'acknowledged lock']);
      expect(error).toBeInstanceOf(LockNotAcquiredError);
      expect((error as LockNotAcquiredError).keys).toEqual(['frozen']);
      expect((error as Error).message).toContain(
        `only 0 of the 1 replica(s) that \`replicaAcks\` asks for acknowledged it within ${timeoutMs} ms`,
      );
      // Its lease is 60 s: only the release can have removed it.
      expect(await onMaster.exists(writerKey('frozen'))).toBe(0);
    } finally {
      replica.resume();
    }
    await replicaCaughtUp();
  });

  /** Until the waiter stands in line on the master: no event tells when its script has run. */
  async function queuedOnMaster(name: string): Promise<void> {
    await until(`a waiter queued on ${name}`, async () => {
      return (await onMaster.zcard(lockRedisKeys('lock:', name).queue)) > 0;
    });
  }

  /** Until a client of the master is blocked in WAIT: Redis announces no such event. */
  async function waitBlockedOn(server: RedisServer): Promise<void> {
    await until('a client blocked in WAIT', async () => {
      const clients = await ask(server.port, 'CLIENT LIST');
      return typeof clients === 'string' && /\bcmd=wait\b/.test(clients);
    });
  }

  /** Until the resumed replica acknowledges the master's writes again (WAIT on a client of the test's own). */
  async function replicaCaughtUp(): Promise<void> {
    await onMaster.set('replica-probe', '1');
    await until(
      'the replica to acknowledge again',
      async () => (await onMaster.wait(1, 100)) === 1,
    );
    await onMaster.del('replica-probe');
  }
});

/** How many scripts (EVAL, EVALSHA) and WAITs the server has run so far. */
async function scriptCalls(server: RedisServer): Promise<Record<string, string>> {
  const stats = await ask(server.port, 'INFO commandstats');
  const lines = typeof stats === 'string' ? stats.split('\r\n') : [];
  return Object.fromEntries(
    lines
      .filter((line) => /^cmdstat_(evalsha|eval|wait):/.test(line))
      .map((line) => [line.slice(0, line.indexOf(':')), /calls=(\d+)/.exec(line)![1]!]),
  );
}

/** Polls `check` every 10 ms for up to 5 s; used only where Redis sends no event to await. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (performance.now() < deadline) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`Gave up waiting for ${what}`);
}
