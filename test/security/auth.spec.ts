import 'reflect-metadata';
import { Redis } from 'ioredis';
import {
  InvalidOptionsError,
  LockService,
  RedisTx,
  RedisTxError,
  RedisTxModule,
  type RedisConnectionOption,
} from '../../lib/index.js';
import { CapturedLogger, createLoggedApp } from '../support/captured-logger.js';
import { useRedisServer } from '../support/redis.js';
import { exposed } from '../support/exposed.js';
import { Slack } from '../support/timing.js';

const rightPassword = 'right-horse-battery';
const wrongPassword = 'wrong-Staple-7f3a';
const readyTimeoutMs = 300;

describe('a wrong password', () => {
  const bed = useRedisServer();
  let admin: Redis;
  const rejections: unknown[] = [];
  const recordRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', recordRejection);
    admin = new Redis(bed.server.url);
    // Set after start: the test bed's readiness PING has no password.
    await admin.acl('SETUSER', 'alice', 'on', `>${rightPassword}`, '~*', '&*', '+@all');
    await admin.config('SET', 'requirepass', rightPassword);
  });
  bed.beforeStop(async () => {
    await admin?.quit();
    process.off('unhandledRejection', recordRejection);
  });
  afterEach(async () => {
    expect(rejections.splice(0)).toEqual([]);
    expect((await admin.keys('*')).filter((k) => k !== 'lock:fence')).toEqual([]);
  });

  const port = () => bed.server.port;
  it.each<[string, () => RedisConnectionOption]>([
    ['in a URL, default user', () => `redis://:${wrongPassword}@127.0.0.1:${port()}`],
    ['in a URL, named user', () => `redis://alice:${wrongPassword}@127.0.0.1:${port()}`],
    ['in RedisOptions', () => ({ host: '127.0.0.1', port: port(), password: wrongPassword })],
    [
      'in RedisOptions with a user',
      () => ({ host: '127.0.0.1', port: port(), username: 'alice', password: wrongPassword }),
    ],
  ])(
    '(%s) fails locks and transactions with a typed error in time, never showing the secret',
    async (_, connection) => {
      const logger = new CapturedLogger();
      const app = await createLoggedApp(
        { options: { connection: connection(), transactions: { readyTimeoutMs } } },
        logger,
      );
      try {
        const locks = app.get(LockService);
        const tx = app.get(RedisTx);
        const calls: [string, () => Promise<unknown>][] = [
          ['acquire', () => locks.acquire('order:1', { waitMs: 0 })],
          ['isLocked', () => locks.isLocked('order:1')],
          ['run', () => tx.run(() => void tx.multi.incr('n'))],
          ['run with watch', () => tx.run(() => void tx.multi.incr('n'), { watch: ['n'] })],
        ];
        for (const [name, call] of calls) {
          const slack = Slack.start();
          const started = performance.now();
          const error = await call().catch((e: unknown) => e);
          const failedAfter = performance.now() - started;
          slack.stop();
          expect(`${name}: ${String(error)}`).toMatch(new RegExp(`^${name}: \\w+Error`));
          expect(error).toBeInstanceOf(RedisTxError);
          // Once readyTimeoutMs has run out, give or take how late this process ran.
          expect(failedAfter).toBeLessThan(readyTimeoutMs + slack.ms);
          expect(exposed(error)).not.toContain(wrongPassword);
        }
        // The operator hears about it, once per connection, without the secret.
        expect(logger.text).toMatch(/WRONGPASS/);
        const wrongPassLines = logger.lines.filter((line) => line.includes('WRONGPASS'));
        expect(wrongPassLines.length).toBeLessThanOrEqual(4);
        expect(logger.text).not.toContain(wrongPassword);
      } finally {
        // Closes cleanly while ioredis keeps retrying the handshake.
        await app.close();
      }
      expect(await admin.exists('n')).toBe(0);
    },
  );

  it('works with the right password', async () => {
    const logger = new CapturedLogger();
    const app = await createLoggedApp(
      {
        options: {
          connection: `redis://alice:${rightPassword}@127.0.0.1:${port()}`,
          transactions: { readyTimeoutMs },
        },
      },
      logger,
    );
    try {
      await app.get(LockService).using('order:1', () => undefined);
      await app.get(RedisTx).run(() => void app.get(RedisTx).multi.incr('n'));
      expect(await admin.get('n')).toBe('1');
      await admin.del('n');
    } finally {
      await app.close();
    }
  });

  it('is not echoed by the option check of a malformed URL', () => {
    for (const url of [
      `http://alice:${wrongPassword}@127.0.0.1:1`,
      `redis:/alice:${wrongPassword}@127.0.0.1:1`,
      `alice:${wrongPassword}@127.0.0.1:1`,
    ]) {
      const error = (() => {
        try {
          RedisTxModule.forRoot({ connection: url });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(/option `connection`/);
      expect(exposed(error)).not.toContain(wrongPassword);
    }
  });
});
