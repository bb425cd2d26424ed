import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  LockNotAcquiredError,
  LockService,
  RedisTx,
  Transactional,
  TransactionAbortedError,
} from '../../lib/index.js';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { createTestApp } from '../support/nest-app.js';
import { expectNoHandlesBeyond, openHandles } from '../support/open-handles.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

/** How long the library waits for one reply here: short, so that a silent server is found quickly. */
const COMMAND_TIMEOUT_MS = 300;

@Injectable()
class Counter {
  constructor(readonly redis: RedisTx) {}

  @Transactional({ watch: ['live:n'], retries: 3 })
  async bump(): Promise<void> {
    const n = Number(await this.redis.client.get('live:n'));
    this.redis.multi.set('live:n', String(n + 1));
  }

  /** Reads under WATCH and queues nothing: the connection is handed back after an UNWATCH. */
  @Transactional({ watch: ['live:n'], retries: 3 })
  async peek(): Promise<number> {
    return Number(await this.redis.client.get('live:n'));
  }
}

describe('every WATCH transaction settles, whichever command loses its reply', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let app: INestApplication;
  let observer: Redis;
  const counter = () => app.get(Counter);

  beforeAll(async () => {
    observer = new Redis(redis.server.url);
    app = await createTestApp({
      options: {
        connection: net.proxy.url,
        commandTimeoutMs: COMMAND_TIMEOUT_MS,
        // Two connections: two hung transactions would block every later one.
        transactions: { watchConnections: 2 },
      },
      providers: [Counter],
    });
  });
  redis.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });
  beforeEach(async () => {
    await observer.set('live:n', '0');
  });

  it.each([
    ['WATCH', 'cut-after-send'],
    ['GET', 'cut-after-send'],
    ['WATCH', 'drop-reply'],
    ['GET', 'drop-reply'],
  ] as const)(
    'a %s whose reply is lost (%s) counts as a conflict, and the transaction runs again and commits once',
    async (command, action) => {
      // Three times over a pool of two: a leaked or hung connection would block the third.
      for (let round = 1; round <= 3; round++) {
        const fault = net.proxy.faultOn(command, action);
        await counter().bump();
        await fault;
      }
      expect(await observer.get('live:n')).toBe('3');
      await counter().bump();
      expect(await observer.get('live:n')).toBe('4');
    },
  );

  it.each(['cut-after-send', 'drop-reply'] as const)(
    'an UNWATCH whose reply is lost (%s) settles, and its connection is replaced',
    async (action) => {
      for (let round = 1; round <= 3; round++) {
        const fault = net.proxy.faultOn('UNWATCH', action);
        expect(await counter().peek()).toBe(0);
        await fault;
      }
      await counter().bump();
      expect(await observer.get('live:n')).toBe('1');
    },
  );

  it('with Redis silent on every connection, the transaction fails typed within its bounds, nothing applied', async () => {
    // A short readyTimeoutMs, so that the retry's silent handshake ends soon.
    const impatient = await createTestApp({
      options: {
        connection: net.proxy.url,
        commandTimeoutMs: COMMAND_TIMEOUT_MS,
        transactions: { readyTimeoutMs: 1_000 },
      },
      providers: [Counter],
    });
    await impatient.get(Counter).peek();
    net.proxy.dropReplies();
    const error = await impatient
      .get(Counter)
      .bump()
      .catch((e: unknown) => e);
    net.proxy.pass();
    await impatient.close();
    // The WATCH on the open connection is lost (a conflict); the retry's new
    // connection never finishes its handshake (not sent, after readyTimeoutMs).
    expect(error).toBeInstanceOf(TransactionAbortedError);
    expect((error as Error).message).toMatch(/not reachable within 1000 ms/);
    expect(await observer.get('live:n')).toBe('0');
    await counter().bump();
    expect(await observer.get('live:n')).toBe('1');
  });
});

describe('readyTimeoutMs while Redis refuses connections', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  let observer: Redis;

  beforeAll(() => {
    observer = new Redis(redis.server.url, { lazyConnect: true });
  });
  redis.beforeStop(() => observer.disconnect());

  it('a transaction waits across reconnect attempts and commits once Redis is back', async () => {
    const app = await createTestApp({
      options: { connection: redis.server.url, transactions: { readyTimeoutMs: 60_000 } },
      providers: [Counter],
    });
    try {
      const { redis: moduleConnection } = app.get(RedisConnections).transactions;
      const refused = () =>
        new Promise<void>((resolve) => moduleConnection.once('error', () => resolve()));
      await redis.server.kill();
      await refused();
      const bump = app.get(Counter).bump();
      let settled = false;
      void bump.finally(() => (settled = true)).catch(() => undefined);
      // Two more refused reconnects of the module's connection: the
      // transaction's own connection has been refused meanwhile too.
      await refused();
      await refused();
      expect(settled).toBe(false);
      await redis.server.restart();
      await bump;
      await observer.connect();
      expect(await observer.get('live:n')).toBe('1');
    } finally {
      await app.close();
    }
  });

  it('gives up after readyTimeoutMs with the last connection error in the message', async () => {
    const app = await createTestApp({
      options: { connection: redis.server.url, transactions: { readyTimeoutMs: 200 } },
      providers: [Counter],
    });
    try {
      await redis.server.kill();
      const error = await app
        .get(Counter)
        .bump()
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransactionAbortedError);
      expect((error as Error).message).toMatch(
        /not sent, so nothing was applied: Redis was not reachable within 200 ms .*ECONNREFUSED/,
      );
    } finally {
      await app.close();
      await redis.server.restart();
    }
  });
});

describe('app.close() against a server that accepts connections and never answers', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);

  it('returns, and leaves no socket or timer behind', async () => {
    const baseline = openHandles();
    net.proxy.blackhole();
    const app = await createTestApp({
      options: { connection: net.proxy.url },
      providers: [Counter],
    });
    await app.close();
    net.proxy.pass();
    // The proxy's own sockets to Redis stay open; count the app's side only.
    await expectNoHandlesBeyond({
      ...baseline,
      TCPWrap: (baseline['TCPWrap'] ?? 0) + net.proxy.connections,
    });
  });
});

describe('a connection opened while Redis is silent', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);

  it('fails the call typed once readyTimeoutMs passes, and nothing escapes uncaught', async () => {
    const app = await createTestApp({
      options: {
        connection: net.proxy.url,
        commandTimeoutMs: COMMAND_TIMEOUT_MS,
        // Several command deadlines: the handshake must not be cut by the guard meanwhile.
        transactions: { readyTimeoutMs: 4 * COMMAND_TIMEOUT_MS },
      },
    });
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', record);
    try {
      // The lock connection opens on first use: into a proxy that forwards nothing.
      net.proxy.blackhole();
      const error = await app
        .get(LockService)
        .acquire('silent-handshake')
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockNotAcquiredError);
      expect((error as LockNotAcquiredError).reason).toBe('connection');
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', record);
      net.proxy.pass();
      net.proxy.cutAll();
      await app.close();
    }
  });
});
