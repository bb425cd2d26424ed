import 'reflect-metadata';
import { inspect } from 'node:util';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  channelNames,
  LockNotAcquiredError,
  LockService,
  RedisPermissionError,
  RedisTx,
  RedisTxError,
  TransactionAbortedError,
  Transactional,
} from '../../lib/index.js';
import { CapturedLogger, createLoggedApp } from '../support/captured-logger.js';
import { nextEvent } from '../support/next-event.js';
import { useRedisServer } from '../support/redis.js';

/**
 * What a user of the lock keys needs, found by trying (ACL LOG names every
 * refused command): the keys and the hand-off channel under the prefix; the
 * scripts (EVALSHA, and EVAL the first time a script is not cached) and the
 * commands they call, since Redis checks those too; SUBSCRIBE for waiters;
 * INFO for ioredis's ready check (without it ioredis warns and skips the check).
 */
const lockUserRules = [
  '~lock:*',
  '&lock:handoff*',
  ...['evalsha', 'eval', 'subscribe', 'info'].map((c) => `+${c}`),
  ...['exists', 'get', 'set', 'del', 'incr', 'pexpire', 'pttl', 'time', 'publish'].map(
    (c) => `+${c}`,
  ),
  ...[
    'zadd',
    'zrem',
    'zcard',
    'zcount',
    'zrange',
    'zrangebyscore',
    'zremrangebyscore',
    'zscore',
  ].map((c) => `+${c}`),
];

@Injectable()
class Ledger {
  constructor(readonly tx: RedisTx) {}

  @Transactional()
  async credit(key: string) {
    this.tx.multi.incr('ledger:total').incr(key);
  }
}

describe('Redis ACL users', () => {
  const bed = useRedisServer();
  let admin: Redis;
  const apps: INestApplication[] = [];
  const logger = new CapturedLogger();
  const rejections: unknown[] = [];
  const recordRejection = (reason: unknown) => rejections.push(reason);

  const urlFor = (user: string) => `redis://${user}:secret-${user}@127.0.0.1:${bed.server.port}`;
  const appAs = async (user: string, pollMs = 1_000) => {
    const app = await createLoggedApp(
      {
        options: {
          connection: urlFor(user),
          locks: { pollMs },
          transactions: { readyTimeoutMs: 2_000 },
        },
        providers: [Ledger],
      },
      logger,
    );
    apps.push(app);
    return app;
  };
  /** Commands the server has received, all users together: run, failed, or refused (NOPERM). */
  const received = async () => {
    const stats = await admin.info('commandstats');
    return [...stats.matchAll(/calls=(\d+),.*rejected_calls=(\d+)/g)].reduce(
      (sum, [, calls, rejected]) => sum + Number(calls) + Number(rejected),
      0,
    );
  };

  beforeAll(async () => {
    process.on('unhandledRejection', recordRejection);
    admin = new Redis(bed.server.url);
    await admin.acl('SETUSER', 'locker', 'on', '>secret-locker', ...lockUserRules);
    // Allowed every command and channel, but no key.
    await admin.acl('SETUSER', 'keyless', 'on', '>secret-keyless', '+@all', 'allchannels');
  });
  bed.beforeStop(async () => {
    for (const app of apps) await app.close();
    await admin?.quit();
    process.off('unhandledRejection', recordRejection);
  });
  beforeEach(async () => {
    await admin.flushall();
    await admin.acl('LOG', 'RESET');
  });
  afterEach(async () => {
    expect(rejections.splice(0)).toEqual([]);
    expect((await admin.keys('*')).filter((k) => k !== 'lock:fence')).toEqual([]);
  });

  it('lets a user limited to the lock keys acquire, extend, wait for and release locks', async () => {
    const [one, two] = [await appAs('locker', 60_000), await appAs('locker', 60_000)];
    const locks = one.get(LockService);
    const lock = await locks.acquire('order:1', { ttlMs: 5_000 });
    expect(await locks.isLocked('order:1')).toBe(true);
    expect(await lock.extend(10_000)).toBe(true);
    expect(await two.get(LockService).tryAcquire('order:1')).toBeNull();
    // A waiter on the other app is woken by the release message (its poll is a minute away).
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = two.get(LockService).acquire('order:1', { waitMs: 20_000 });
    await waitAnnounced;
    expect(await lock.release()).toBe(true);
    const handed = await waiting;
    expect(handed.fencingToken).toBeGreaterThan(lock.fencingToken);
    expect(await handed.release()).toBe(true);
    await two.get(LockService).using('sem', () => undefined, { permits: 2 });
    await two.get(LockService).using('rw', () => undefined, { mode: 'read' });
    expect(await admin.acl('LOG')).toEqual([]);
    // And nothing beyond: a command outside the list is refused.
    await expect(locks.isLocked('order:1')).resolves.toBe(false);
    const raw = new Redis(urlFor('locker'));
    await expect(raw.get('other:key')).rejects.toThrow(/NOPERM/);
    await expect(raw.flushall()).rejects.toThrow(/NOPERM/);
    await raw.quit();
  });

  it('answers a user without permission on the lock keys with RedisPermissionError, sent once, not retried', async () => {
    const app = await appAs('keyless');
    const locks = app.get(LockService);
    await locks.tryAcquire('warm').catch(() => undefined);

    const error = await locks.acquire('order:1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisPermissionError);
    expect(error).toBeInstanceOf(RedisTxError);
    expect(error).not.toBeInstanceOf(LockNotAcquiredError);
    const message = (error as Error).message;
    expect(message).toContain('"order:1"');
    expect(message).toMatch(/Redis user lacks permission/);
    expect(message).toMatch(/ACL SETUSER <user> ~lock:\* /);
    expect(message).not.toMatch(/may have|being released/);
    expect((error as RedisPermissionError).keys).toEqual(['order:1']);
    // The holder token travels in the command, not in what the user sees.
    expect(inspect(error, { depth: 10, showHidden: true })).not.toMatch(/[0-9a-f]{32}/);

    // No retry storm and no release after each refusal: one script call per try.
    const calls = 200;
    const before = await received();
    for (let i = 0; i < calls; i++) {
      await expect(locks.tryAcquire(`order:${i}`)).rejects.toThrow(RedisPermissionError);
    }
    // Exactly one command per try; the +1 is the first INFO itself.
    expect((await received()) - before - 1).toBe(calls);
    const refused = /cmdstat_evalsha:.*rejected_calls=(\d+)/.exec(await admin.info('commandstats'));
    expect(Number(refused![1])).toBeGreaterThanOrEqual(calls);
  });

  it('answers a script command the user may not run with RedisPermissionError too', async () => {
    const rules = lockUserRules.filter((rule) => rule !== '+zadd');
    await admin.acl('SETUSER', 'no-zadd', 'on', '>secret-no-zadd', ...rules);
    const app = await appAs('no-zadd');
    const error = await app
      .get(LockService)
      .using('shared', () => undefined, { mode: 'read' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisPermissionError);
    expect((error as Error).message).toMatch(/"shared".*can't run this command/);
    // Write locks need no ZADD: they still work for this user.
    await app.get(LockService).using('exclusive', () => undefined);
  });

  it('answers a waiter whose user may not subscribe to the hand-off channel with RedisPermissionError, and takes it out of the line', async () => {
    const rules = lockUserRules.filter((rule) => rule !== '&lock:handoff*');
    await admin.acl('SETUSER', 'deaf', 'on', '>secret-deaf', ...rules);
    const holder = await (await appAs('locker')).get(LockService).acquire('busy');
    const error = await (
      await appAs('deaf')
    )
      .get(LockService)
      .acquire('busy', { waitMs: 5_000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisPermissionError);
    expect((error as Error).message).toMatch(/"busy".*NOPERM/s);
    // Out of the line at once: no waiter left for the release to hand the lock to.
    expect(await admin.exists('lock:{busy}:q', 'lock:{busy}:qx')).toBe(0);
    await holder.release();
  });

  it('turns NOPERM inside MULTI into TransactionAbortedError with nothing applied', async () => {
    await admin.acl('SETUSER', 'ledger-only', 'on', '>secret-ledger-only', '+@all', '~ledger:*');
    const app = await appAs('ledger-only');
    const error = await app
      .get(Ledger)
      .credit('forbidden:1')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransactionAbortedError);
    expect((error as Error).message).toMatch(/NOPERM/);
    expect(await admin.exists('ledger:total', 'forbidden:1')).toBe(0);
    await app.get(Ledger).credit('ledger:1');
    expect(await admin.mget('ledger:total', 'ledger:1')).toEqual(['1', '1']);
    await admin.del('ledger:total', 'ledger:1');
  });

  it('refuses a WATCH without permission before the method runs, with nothing applied', async () => {
    await admin.acl('SETUSER', 'ledger-only', 'on', '>secret-ledger-only', '+@all', '~ledger:*');
    const app = await appAs('ledger-only');
    const tx = app.get(RedisTx);
    let ran = 0;
    const error = await tx
      .run(
        () => {
          ran++;
          tx.multi.incr('ledger:total');
        },
        { watch: ['forbidden:1'] },
      )
      .catch((e: unknown) => e);
    // A definite refusal, typed, not retried.
    expect(error).toBeInstanceOf(TransactionAbortedError);
    expect((error as Error).message).toMatch(/refused the WATCH \(NOPERM/);
    expect(ran).toBe(0);
    expect(await admin.exists('ledger:total')).toBe(0);
  });
});
