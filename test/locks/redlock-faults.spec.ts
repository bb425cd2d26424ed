import 'reflect-metadata';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  LockLostError,
  LockNotAcquiredError,
  LockService,
  type LockDefaults,
} from '../../lib/index.js';
import type { RedisServer } from '../../tools/redis-server.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServers } from '../support/redis.js';
import { Slack } from '../support/timing.js';

/**
 * Five fresh masters, an app locking on them, and an observer per master.
 * Each block gets its own, since its faults (a killed master) outlive a test.
 */
function useRedlockBed(locks: Omit<LockDefaults, 'redlock'>, count = 5, args?: string[]) {
  const bed = useRedisServers(count, args ? { args } : undefined);
  const state: { app?: INestApplication; observers: Redis[] } = { observers: [] };
  beforeAll(async () => {
    // Observers of a master that is killed end with it rather than retry.
    state.observers = bed.servers.map(
      (s) => new Redis(s.url, { enableOfflineQueue: false, retryStrategy: () => null }),
    );
    await Promise.all(state.observers.map((o) => once(o, 'ready')));
    state.app = await createTestApp({
      options: {
        connection: bed.servers[0]!.url,
        locks: { ...locks, redlock: { connections: bed.servers.map((s) => s.url) } },
      },
    });
  });
  bed.beforeStop(async () => {
    for (const server of bed.servers) server.resume();
    await state.app?.close();
    for (const observer of state.observers) observer.disconnect();
  });
  return {
    get servers(): RedisServer[] {
      return bed.servers;
    },
    get locks(): LockService {
      return state.app!.get(LockService);
    },
    observer: (i: number) => state.observers[i]!,
    /** How many of the masters `indexes` hold the lock key now. */
    holders: async (name: string, indexes: number[]) =>
      (await Promise.all(indexes.map((i) => state.observers[i]!.exists(`lock:{${name}}`)))).reduce(
        (a, b) => a + b,
        0,
      ),
  };
}

/**
 * Polls a real condition until it holds or the deadline passes. Used only
 * where no event exists: a master resumed from SIGSTOP works off its queued
 * commands on its own schedule, and nothing announces when it is done.
 */
async function eventually(check: () => Promise<boolean>, withinMs = 3_000): Promise<void> {
  const deadline = performance.now() + withinMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`not true within ${withinMs} ms`);
    await sleep(20);
  }
}

const nodeName = (server: RedisServer) => `127.0.0.1:${server.port}`;

describe('Redlock with a minority of masters killed', () => {
  const bed = useRedlockBed({ ttlMs: 3_000 });

  it('still acquires, extends and releases, on the live majority', async () => {
    await Promise.all([bed.servers[3]!.kill(), bed.servers[4]!.kill()]);
    const live = [0, 1, 2];
    const lock = await bed.locks.acquire('minority', { waitMs: 0 });
    expect(await bed.holders('minority', live)).toBe(3);
    expect(await bed.locks.isLocked('minority')).toBe(true);
    expect(await lock.extend(10_000)).toBe(true);
    expect(await bed.observer(0).pttl('lock:{minority}')).toBeGreaterThan(3_000);
    expect(lock.signal.aborted).toBe(false);
    expect(await lock.release()).toBe(true);
    expect(await bed.holders('minority', live)).toBe(0);
  });
});

describe('Redlock with a minority of masters frozen', () => {
  const bed = useRedlockBed({ ttlMs: 3_000 });

  it('acquires, extends and releases without waiting for the frozen ones', async () => {
    bed.servers[3]!.pause();
    bed.servers[4]!.pause();
    const started = performance.now();
    const lock = await bed.locks.acquire('frozen', { waitMs: 0 });
    expect(await lock.extend()).toBe(true);
    expect(await lock.release()).toBe(true);
    // Had any of the three calls waited for a frozen master, it alone would
    // take the 1 s such a master is given to answer.
    expect(performance.now() - started).toBeLessThan(1_000);
    bed.servers[3]!.resume();
    bed.servers[4]!.resume();
    // The frozen masters run the queued acquire, then the release behind it.
    await eventually(async () => (await bed.holders('frozen', [0, 1, 2, 3, 4])) === 0);
  });
});

describe('Redlock fencing tokens', () => {
  const bed = useRedlockBed({ ttlMs: 3_000 });

  it('raises a majority of fence counters to the token it hands out, so later quorums count past it', async () => {
    // Master 0 ran ahead (it counted attempts the others missed); 3 and 4 are
    // frozen, so the quorum is 0, 1 and 2, and 1 and 2 lag far behind.
    await bed.observer(0).set('lock:fence', 1_000);
    for (const i of [3, 4]) bed.servers[i]!.pause();
    const first = await bed.locks.acquire('ahead', { waitMs: 0 });
    expect(first.fencingToken).toBe(1_001);
    for (const i of [1, 2]) expect(Number(await bed.observer(i).get('lock:fence'))).toBe(1_001);
    for (const i of [3, 4]) bed.servers[i]!.resume();
    await first.release();
    // Without master 0 a quorum must use 1 or 2: without the raise it would count 2.
    bed.servers[0]!.pause();
    const next = await bed.locks.acquire('ahead', { waitMs: 0 });
    expect(next.fencingToken).toBeGreaterThan(1_001);
    await next.release();
    bed.servers[0]!.resume();
    await eventually(async () => (await bed.holders('ahead', [0, 1, 2, 3, 4])) === 0);
  });
});

describe('Redlock with a majority of masters killed', () => {
  const bed = useRedlockBed({ ttlMs: 60_000, pollMs: 100 });

  it('refuses within the wait, names the failed masters, and leaves nothing on the live ones', async () => {
    const dead = [2, 3, 4].map((i) => bed.servers[i]!);
    await Promise.all(dead.map((s) => s.kill()));
    const slack = await Slack.start().measureRoundTrip(bed.observer(0));
    const started = performance.now();
    const error = await bed.locks.acquire('majority', { waitMs: 300 }).catch((e: unknown) => e);
    const refusedAfter = performance.now() - started;
    slack.stop();
    // When the wait ran out, give or take how late this machine runs.
    expect(refusedAfter).toBeLessThan(300 + slack.ms);
    expect(error).toBeInstanceOf(LockNotAcquiredError);
    expect((error as Error).message).toMatch(/only 2 of 5 Redlock masters answered.*3 are needed/);
    const cause = (error as Error).cause as AggregateError;
    expect(cause).toBeInstanceOf(AggregateError);
    const named = cause.errors.map((e: Error) => e.message).join('\n');
    for (const server of dead) expect(named).toContain(nodeName(server));
    expect(await bed.holders('majority', [0, 1])).toBe(0);
    expect((error as LockNotAcquiredError).reason).toBe('no-quorum');
    // Not "busy": tryAcquire's null would tell the caller someone holds it.
    await expect(bed.locks.tryAcquire('majority')).rejects.toMatchObject({ reason: 'no-quorum' });
  });
});

describe('Redlock partial acquisition', () => {
  const bed = useRedlockBed({ ttlMs: 60_000 });

  it('releases at once the keys it set when it cannot reach a quorum', async () => {
    await Promise.all([0, 1].map((i) => bed.observer(i).set('lock:{part}', 'other', 'PX', 60_000)));
    await bed.servers[4]!.kill();
    await expect(bed.locks.acquire('part', { waitMs: 0 })).rejects.toThrow(LockNotAcquiredError);
    // Checked at once: the 60 s lease could not have removed them.
    expect(await bed.holders('part', [2, 3])).toBe(0);
    expect(await bed.observer(0).get('lock:{part}')).toBe('other');
    expect(await bed.observer(1).get('lock:{part}')).toBe('other');
    await Promise.all([0, 1].map((i) => bed.observer(i).del('lock:{part}')));
  });
});

describe('Redlock losing its majority while held', () => {
  const bed = useRedlockBed({ ttlMs: 600 });

  it('aborts the holder’s signal with LockLostError whose cause names each failed master', async () => {
    const lock = await bed.locks.acquire('lost');
    const frozen = [2, 3, 4].map((i) => bed.servers[i]!);
    const aborted = once(lock.signal, 'abort');
    for (const server of frozen) server.pause();
    await aborted;
    for (const server of frozen) server.resume();
    const reason = lock.signal.reason as LockLostError;
    expect(reason).toBeInstanceOf(LockLostError);
    const cause = reason.cause as AggregateError;
    expect(cause).toBeInstanceOf(AggregateError);
    expect(cause.errors).toHaveLength(3);
    for (const [i, server] of frozen.entries()) {
      expect((cause.errors[i] as Error).message).toContain(nodeName(server));
    }
    await lock.release();
    await eventually(async () => (await bed.holders('lost', [0, 1, 2, 3, 4])) === 0);
  });
});

describe('Redlock validity', () => {
  const bed = useRedlockBed({ ttlMs: 1_000, pollMs: 1_000 }, 3);

  it('counts the lease from the first send: slow masters shorten it', async () => {
    const slow = [1, 2].map((i) => bed.servers[i]!);
    for (const server of slow) server.pause();
    const slack = await Slack.start().measureRoundTrip(bed.observer(0));
    const started = performance.now();
    // The slow masters answer after 300 ms: a quorum, 300 ms into a 1 s lease.
    const resumed = sleep(300).then(() => slow.forEach((s) => s.resume()));
    const lock = await bed.locks.acquire('slow', { waitMs: 0 });
    await resumed;
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    // Renewals cannot reach a majority from now on: the lease ends 1 s after the first send.
    for (const server of slow) server.pause();
    await once(lock.signal, 'abort');
    const lostAfter = performance.now() - started;
    for (const server of slow) server.resume();
    slack.stop();
    expect(lostAfter).toBeGreaterThanOrEqual(990);
    // Lost at the lease's end, give or take how late this process's timers ran.
    expect(lostAfter).toBeLessThan(1_000 + slack.ms);
    await lock.release();
    await eventually(async () => (await bed.holders('slow', [0, 1, 2])) === 0);
  });

  it('refuses when the slow answers eat the whole lease, and removes what they set', async () => {
    const slow = [1, 2].map((i) => bed.servers[i]!);
    const slack = await Slack.start().measureRoundTrip(bed.observer(0));
    for (const server of slow) server.pause();
    let answered = false;
    const resumed = sleep(400).then(() => {
      answered = true;
      slow.forEach((s) => s.resume());
    });
    const started = performance.now();
    const error = await bed.locks
      .acquire('late', { ttlMs: 200, waitMs: 0 })
      .catch((e: unknown) => e);
    const refusedAfter = performance.now() - started;
    slack.stop();
    expect(error).toBeInstanceOf(LockNotAcquiredError);
    // Refused once the 200 ms lease was spent, before the slow masters answered.
    expect(answered).toBe(false);
    expect(refusedAfter).toBeLessThan(200 + slack.ms);
    await resumed;
    await eventually(async () => (await bed.holders('late', [0, 1, 2])) === 0);
  });
});
