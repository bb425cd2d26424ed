import 'reflect-metadata';
import { once } from 'node:events';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  Locked,
  LockNotAcquiredError,
  LockService,
  type LockRefusalReason,
} from '../../lib/index.js';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer, useRedisServers } from '../support/redis.js';

@Injectable()
class Cron {
  runs = 0;

  @Locked('nightly', { waitMs: 0, onBusy: 'skip' })
  async nightly() {
    this.runs++;
  }
}

/** The refusal `promise` rejects with; fails the test when it resolves (a null from tryAcquire included). */
async function refusal(promise: Promise<unknown>): Promise<LockNotAcquiredError> {
  const outcome = await promise.then(
    (value) => ({ resolved: value }),
    (error: unknown) => ({ rejected: error }),
  );
  expect(outcome).toEqual({ rejected: expect.any(LockNotAcquiredError) });
  return (outcome as { rejected: LockNotAcquiredError }).rejected;
}

const reason = (expected: LockRefusalReason) => expected;

describe('lock refusals tell the truth about why', () => {
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let app: INestApplication;
  let rival: Redis;
  const locks = () => app.get(LockService);

  beforeAll(async () => {
    rival = new Redis(redis.server.url);
  });
  redis.beforeStop(() => rival?.quit());
  beforeEach(async () => {
    await rival.flushall();
    app = await createTestApp({
      options: {
        connection: { host: net.proxy.host, port: net.proxy.port },
        // How long a lock waits for an unreachable Redis before refusing: kept short here.
        transactions: { readyTimeoutMs: 300 },
      },
      providers: [Cron],
    });
    // Every connection is up before the fault, so the fault is what each test meets.
    await locks().using('warm-up', () => undefined);
  });
  afterEach(async () => {
    // Connections opened during a blackhole never finished their handshake: cut them too.
    net.proxy.pass();
    net.proxy.cutAll();
    await app.close();
  });

  /**
   * Redis stops answering: open connections are cut, new ones reach nothing.
   * Resolves once the lock connection has seen its cut (a request written
   * before that might have reached Redis: its outcome would be unknown).
   */
  async function unreachable() {
    const closed = once(app.get(RedisConnections).locks.redis, 'close');
    net.proxy.blackhole();
    net.proxy.cutAll();
    await closed;
  }

  it('tryAcquire: null when the lock is held elsewhere, and then only', async () => {
    await rival.set('lock:{held}', 'someone-else', 'PX', 60_000);
    expect(await locks().tryAcquire('held')).toBeNull();
  });

  it('tryAcquire: Redis unreachable is a refusal for `connection`, not null', async () => {
    await unreachable();
    const error = await refusal(locks().tryAcquire('order:1'));
    expect(error.reason).toBe(reason('connection'));
    expect(error.keys).toEqual(['order:1']);
    expect(error.message).toMatch(/Redis could not be reached.*nothing was taken/);
  });

  it('acquire: Redis unreachable is `connection` (nothing was sent), not `outcome-unknown`', async () => {
    await unreachable();
    const error = await refusal(locks().acquire(['a', 'b'], { waitMs: 1_000 }));
    expect(error.reason).toBe(reason('connection'));
    expect(error.keys).toEqual(['a', 'b']);
  });

  it('tryAcquire: a reply lost after the request went out is `outcome-unknown`, not null', async () => {
    const cut = net.proxy.faultOn('EVALSHA', 'cut-after-send');
    const error = await refusal(locks().tryAcquire('lost-reply', { ttlMs: 60_000 }));
    await cut;
    expect(error.reason).toBe(reason('outcome-unknown'));
  });

  it('@Locked onBusy skip: skips a busy lock, but throws when Redis is unreachable', async () => {
    const cron = app.get(Cron);
    await rival.set('lock:{nightly}', 'someone-else', 'PX', 60_000);
    await expect(cron.nightly()).resolves.toBeUndefined();
    await unreachable();
    const error = await refusal(cron.nightly());
    expect(error.reason).toBe(reason('connection'));
    expect(cron.runs).toBe(0);
  });

  it('tryAcquire after shutdown began is `shutdown`, not null', async () => {
    const closed = app;
    await closed.close();
    const error = await refusal(closed.get(LockService).tryAcquire('late'));
    expect(error.reason).toBe(reason('shutdown'));
    // afterEach closes it again, which is harmless.
  });
});

describe('Redlock refusals tell the truth about why', () => {
  const bed = useRedisServers(3);
  let app: INestApplication;
  beforeAll(async () => {
    app = await createTestApp({
      options: {
        connection: bed.servers[0]!.url,
        locks: { pollMs: 200, redlock: { connections: bed.servers.map((s) => s.url) } },
      },
    });
  });
  bed.beforeStop(() => app?.close());

  it('tryAcquire with a majority of masters gone is `no-quorum`, not null', async () => {
    await Promise.all([bed.servers[1]!.kill(), bed.servers[2]!.kill()]);
    const error = await refusal(app.get(LockService).tryAcquire('quorum'));
    expect(error.reason).toBe(reason('no-quorum'));
  });
});
