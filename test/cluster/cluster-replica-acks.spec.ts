import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  channelNames,
  LockNotAcquiredError,
  LockService,
  type Lock,
  type LockAcquireEvent,
} from '../../lib/index.js';
import { lockRedisKeys } from '../../lib/locks/lock-keys.js';
import { lockSlotKeys } from '../../lib/locks/lock-slot-keys.js';
import { ask, type RedisServer } from '../../tools/redis-server.js';
import { useRedisCluster } from '../support/cluster.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';

const writerKey = (name: string) => lockRedisKeys('lock:', name).writer;

// A healthy replica acknowledges within a millisecond or so; a loaded test
// machine must not turn that into a refusal these tests are not about.
const generous = 5_000;

/** How often each node has run a command, from INFO commandstats. */
async function calls(node: RedisServer, command: string): Promise<number> {
  const stats = await ask(node.port, 'INFO commandstats');
  const found = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(stats));
  return Number(found?.[1] ?? 0);
}

/** What a node holds under `key`, asked of that node alone (a replica too). */
async function readOn(node: RedisServer, key: string): Promise<string | null> {
  const direct = new Redis({ host: node.host, port: node.port, readOnly: true });
  try {
    return await direct.get(key);
  } finally {
    direct.disconnect();
  }
}

describe('replicaAcks on Redis Cluster', () => {
  const bed = useRedisCluster();
  let first: INestApplication;
  let second: INestApplication;
  const locks = (app: INestApplication) => app.get(LockService);

  beforeAll(async () => {
    const options = {
      connection: { cluster: bed.cluster.startupNodes },
      locks: { ttlMs: 60_000, replicaAcks: 1, replicaAckTimeoutMs: generous },
    };
    [first, second] = await Promise.all([createTestApp({ options }), createTestApp({ options })]);
  });
  bed.beforeStop(async () => {
    await first?.close();
    await second?.close();
  });

  it('runs WAIT on the lock’s master, and returns the lock only once its replica has it', async () => {
    const name = 'acked';
    const owner = await bed.cluster.masterForKey(writerKey(name));
    const [replica] = await bed.cluster.replicasOf(owner);
    const others = bed.cluster.nodes.filter((node) => node !== owner);
    const waitsBefore = await Promise.all(others.map((node) => calls(node, 'wait')));
    const ownerWaitsBefore = await calls(owner, 'wait');

    const lock = await locks(first).acquire(name);
    try {
      // Asked of the replica directly, right after acquire returned.
      expect(await readOn(replica!, writerKey(name))).not.toBeNull();
      expect(await readOn(replica!, writerKey(name))).toBe(await readOn(owner, writerKey(name)));
      expect(await calls(owner, 'wait')).toBe(ownerWaitsBefore + 1);
      expect(await Promise.all(others.map((node) => calls(node, 'wait')))).toEqual(waitsBefore);
    } finally {
      await lock.release();
    }
  });

  it('has a lock handed over on release acknowledged too', async () => {
    const name = 'handed';
    const owner = await bed.cluster.masterForKey(writerKey(name));
    const [replica] = await bed.cluster.replicasOf(owner);
    const holder = await locks(first).acquire(name, { replicaAcks: 0 });
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const acquired = nextEvent<LockAcquireEvent>(channelNames.lockAcquire);
    const waiter = locks(second).acquire(name, { waitMs: 10_000 });
    await waitAnnounced;
    await holder.release();
    const lock = await waiter;
    try {
      expect(await readOn(replica!, writerKey(name))).not.toBeNull();
      expect(lock.fencingToken).toBeGreaterThan(holder.fencingToken);
      expect(await acquired).toMatchObject({ keys: [name], wokenBy: 'release' });
    } finally {
      await lock.release();
    }
  });

  it('fails closed when the replica cannot acknowledge: reason replica-acks, the lock released at once', async () => {
    const name = 'frozen-replica';
    const owner = await bed.cluster.masterForKey(writerKey(name));
    const [replica] = await bed.cluster.replicasOf(owner);
    const timeoutMs = 200;
    replica!.pause();
    try {
      const error = await locks(first)
        .acquire(name, { replicaAckTimeoutMs: timeoutMs })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockNotAcquiredError);
      expect(error).toMatchObject({ reason: 'replica-acks', keys: [name] });
      expect((error as Error).message).toContain(`within ${timeoutMs} ms`);
      // Its lease is 60 s: only the release can have removed it.
      expect(await readOn(owner, writerKey(name))).toBeNull();
    } finally {
      replica!.resume();
    }
    await bed.cluster.settled();
  });

  it('keeps an acknowledged lock through a crash of its master: the promoted replica has it', async () => {
    const name = 'survivor';
    const master = await bed.cluster.masterForKey(writerKey(name));
    const lock: Lock = await locks(first).acquire(name);
    await master.kill();
    // Acquisitions while the slot has no master fail typed, never as plain RedisTxError.
    const during = await locks(second)
      .acquire('during-outage', { waitMs: 0 })
      .then((other) => other.release())
      .catch((e: unknown) => e);
    if (during !== undefined) expect(during).toBeInstanceOf(LockNotAcquiredError);

    await bed.cluster.settled();
    const promoted = await bed.cluster.masterForKey(writerKey(name));
    expect(promoted.port).not.toBe(master.port);
    expect(await readOn(promoted, writerKey(name))).not.toBeNull();

    // The second application is refused while the first holds it: it reaches
    // the promoted master once its slot map catches up, and finds the lock.
    const refusal = await refusedWhileHeld(name);
    expect(refusal).toMatchObject({ reason: 'busy' });

    // The fencing counter came through too: the next holder's token is higher.
    const fence = lockSlotKeys('lock:', true).fence(lockRedisKeys('lock:', name));
    expect(Number(await readOn(promoted, fence))).toBeGreaterThanOrEqual(lock.fencingToken);
    // Its holder's connection may learn of the promotion only from this call's failure.
    await lock.release().catch(() => false);
  });

  /** A try-lock by the second application, which must find the lock held. */
  function refusedWhileHeld(name: string): Promise<unknown> {
    return pastFailover(() =>
      locks(second)
        .acquire(name, { waitMs: 0 })
        .then(async (taken) => {
          await taken.release();
          throw new Error('the lock was free on the promoted master');
        }),
    );
  }

  /**
   * Repeats `call` (bounded by time) while it fails because its connection
   * has not yet caught up with the failover, and returns its first other
   * outcome: a client learns of a promotion only from its next failure.
   */
  async function pastFailover<T>(call: () => Promise<T>): Promise<T | unknown> {
    const deadline = performance.now() + generous;
    for (;;) {
      const outcome = await call().catch((e: unknown) => e);
      const failover =
        outcome instanceof LockNotAcquiredError &&
        (outcome.reason === 'connection' || outcome.reason === 'outcome-unknown');
      if (!failover || performance.now() > deadline) return outcome;
    }
  }
});
