import 'reflect-metadata';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { LockService, RedisTx, RedisTxError, type RedisConnectionOption } from '../../lib/index.js';
import { freePort, RedisServer } from '../../tools/redis-server.js';
import { CapturedLogger, createLoggedApp } from '../support/captured-logger.js';
import { eventually, Slack } from '../support/timing.js';
import { makeTestCertificates, tlsServerArgs, type TestCertificates } from '../support/tls.js';

const readyTimeoutMs = 500;

describe('TLS', () => {
  let certificates: TestCertificates | undefined;
  let server: RedisServer | undefined;
  let tlsPort = 0;
  /** On the server's plain port, which no app under test uses. */
  let observer: Redis | undefined;
  const rejections: unknown[] = [];
  const recordRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', recordRejection);
    certificates = makeTestCertificates();
    tlsPort = await freePort();
    server = await RedisServer.start({ args: tlsServerArgs(certificates, tlsPort) });
    observer = new Redis(server.url);
  });
  afterAll(async () => {
    await observer?.quit();
    await server?.stop();
    certificates?.remove();
    process.off('unhandledRejection', recordRejection);
  });
  afterEach(async () => {
    expect(rejections.splice(0)).toEqual([]);
    expect((await observer!.keys('*')).filter((k) => k !== 'lock:fence')).toEqual([]);
  });

  /** Commands the server has processed, and clients it has, apart from the observer. */
  const serverSide = async () => ({
    commands: Number(/total_commands_processed:(\d+)/.exec(await observer!.info('stats'))![1]),
    clients: String(await observer!.client('LIST'))
      .split('\n')
      .filter(Boolean).length,
  });

  const failsClosed = async (connection: RedisConnectionOption, why: RegExp) => {
    const slack = await Slack.start().measureRoundTrip(observer!);
    try {
      await failsClosedWithin(slack, connection, why);
    } finally {
      slack.stop();
    }
  };

  const failsClosedWithin = async (
    slack: Slack,
    connection: RedisConnectionOption,
    why: RegExp,
  ) => {
    const before = await serverSide();
    const logger = new CapturedLogger();
    const app = await createLoggedApp(
      { options: { connection, transactions: { readyTimeoutMs } } },
      logger,
    );
    try {
      const tx = app.get(RedisTx);
      for (const call of [
        () => app.get(LockService).acquire('order:1', { waitMs: 0 }),
        () => tx.run(() => void tx.multi.incr('n')),
        () => tx.run(() => void tx.multi.incr('n'), { watch: ['n'] }),
      ]) {
        const started = performance.now();
        const error = await call().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RedisTxError);
        expect(inspect(error)).toMatch(/not reachable|connection/i);
        // Refused once readyTimeoutMs has run out, give or take how late this machine runs.
        expect(performance.now() - started).toBeLessThan(readyTimeoutMs + slack.ms);
      }
      // The operator sees why: the certificate was refused.
      expect(logger.text).toMatch(why);
      // Nothing reached Redis, in TLS or in plain text (the 2 are the observer's INFO and CLIENT LIST).
      expect((await serverSide()).commands).toBe(before.commands + 2);
      expect(await observer!.exists('n')).toBe(0);
    } finally {
      await app.close();
    }
    // No connection stayed. While the app runs it keeps retrying, so the
    // server may be in the middle of a handshake with it; once it has closed,
    // the server sees the last socket go within a round trip.
    await eventually(
      async () => (await serverSide()).clients === before.clients,
      () => slack.ms,
      `the server back to ${before.clients} client(s)`,
    ).catch(async (error: unknown) => {
      throw new Error(`${String(error)}; ${slack.describe()}\n${await observer!.client('LIST')}`);
    });
  };

  it('fails closed on rediss:// when the server certificate’s CA is not configured', async () => {
    await failsClosed(
      `rediss://127.0.0.1:${tlsPort}`,
      /self[- ]signed certificate|unable to verify/i,
    );
  });

  it('fails closed when the configured CA is the wrong one', async () => {
    await failsClosed(
      { host: '127.0.0.1', port: tlsPort, tls: { ca: certificates!.otherCa } },
      /self[- ]signed certificate|unable to verify|unable to get local issuer/i,
    );
  });

  it('works for locks and transactions with the CA configured', async () => {
    const logger = new CapturedLogger();
    const app = await createLoggedApp(
      {
        options: {
          connection: { host: '127.0.0.1', port: tlsPort, tls: { ca: certificates!.ca } },
          transactions: { readyTimeoutMs },
          locks: { pollMs: 60_000 },
        },
      },
      logger,
    );
    try {
      const locks = app.get(LockService);
      const tx = app.get(RedisTx);
      const lock = await locks.acquire('order:1');
      expect(await observer!.exists('lock:{order:1}')).toBe(1);
      // A waiter is woken by the release message, which also travels over TLS.
      const waiting = locks.acquire('order:1', { waitMs: 20_000 });
      await lock.release();
      await (await waiting).release();
      const result = await tx.run(() => void tx.multi.incr('n'), { watch: ['n'] });
      expect(result.replies).toEqual([1]);
      expect(await observer!.get('n')).toBe('1');
      await observer!.del('n');
      // Every connection of the app came in on the TLS port.
      const clients = String(await observer!.client('LIST'))
        .split('\n')
        .filter((line) => line.includes(`laddr=127.0.0.1:${tlsPort}`));
      expect(clients.length).toBeGreaterThanOrEqual(2);
      expect(logger.text).not.toMatch(/Redis \w+ connection/);
    } finally {
      await app.close();
    }
  });
});
