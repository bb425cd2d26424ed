import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { INestApplication } from '@nestjs/common';
import {
  channelNames,
  LockLostError,
  LockNotAcquiredError,
  LockService,
  RedisTxError,
  type Lock,
} from '../../lib/index.js';
import { lockRedisKeys } from '../../lib/locks/lock-keys.js';
import { RedisServer } from '../../tools/redis-server.js';
import { CapturedLogger, createLoggedApp } from '../support/captured-logger.js';
import { useRedisServer } from '../support/redis.js';
import { Redis } from 'ioredis';
import { exposed } from '../support/exposed.js';

/** A holder token is 32 hex digits; nothing this library shows should contain such a run. */
const tokenLike = /[0-9a-f]{32}/;

describe('holder tokens', () => {
  const bed = useRedisServer();
  const logger = new CapturedLogger();
  let first: INestApplication;
  let second: INestApplication;
  let observer: Redis;
  const events: string[] = [];
  const record = (message: unknown) => events.push(exposed(message));
  const rejections: unknown[] = [];
  const recordRejection = (reason: unknown) => rejections.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', recordRejection);
    for (const name of Object.values(channelNames)) subscribe(name, record);
    observer = new Redis(bed.server.url);
    const options = { connection: bed.server.url, locks: { ttlMs: 10_000 } };
    first = await createLoggedApp({ options }, logger);
    second = await createLoggedApp({ options }, logger);
  });
  bed.beforeStop(async () => {
    await first?.close();
    await second?.close();
    await observer?.quit();
    for (const name of Object.values(channelNames)) unsubscribe(name, record);
    process.off('unhandledRejection', recordRejection);
  });
  beforeEach(async () => {
    await observer.flushall();
    jest.spyOn(Math, 'random').mockReturnValue(0.5);
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    expect(rejections.splice(0)).toEqual([]);
    expect((await observer.keys('*')).filter((k) => k !== 'lock:fence')).toEqual([]);
  });

  /** The holder token stored for a write lock: the writer key holds `<token> <fencing token>`. */
  const storedToken = async (name: string) => {
    const value = await observer.get(lockRedisKeys('lock:', name).writer);
    return value!.split(' ')[0]!.split('@')[0]!;
  };

  it('are distinct over 1,000 acquisitions with Math.random stubbed, each 128 random bits', async () => {
    const [a, b] = [first.get(LockService), second.get(LockService)];
    const held: Lock[] = [];
    for (let i = 0; i < 300; i++) held.push(await a.acquire(`seq:${i}`));
    held.push(
      ...(await Promise.all(
        Array.from({ length: 700 }, (_, i) => (i % 2 ? a : b).acquire(`par:${i}`)),
      )),
    );
    const names = [
      ...Array.from({ length: 300 }, (_, i) => `seq:${i}`),
      ...Array.from({ length: 700 }, (_, i) => `par:${i}`),
    ];
    const values = await observer.mget(names.map((n) => lockRedisKeys('lock:', n).writer));
    // The secret is what comes before the application id (see holderToken).
    const tokens = values.map((v) => v!.split(' ')[0]!.split('@')[0]!);
    expect(new Set(tokens).size).toBe(1_000);
    for (const token of tokens) expect(token).toMatch(/^[0-9a-f]{32}$/);
    // Every one of the 128 bits takes both values across the tokens: not a counter, not a constant.
    const bits = tokens.map((t) => BigInt(`0x${t}`));
    for (let bit = 0n; bit < 128n; bit++) {
      const ones = bits.filter((v) => (v >> bit) & 1n).length;
      expect(ones).toBeGreaterThan(0);
      expect(ones).toBeLessThan(1_000);
    }
    await Promise.all(held.map((lock) => lock.release()));
  });

  it('never appear in errors, causes, diagnostics events or logs, whatever goes wrong', async () => {
    const [a, b] = [first.get(LockService), second.get(LockService)];
    const tokens: string[] = [];
    const texts: string[] = [];
    events.length = 0;
    logger.lines.length = 0;

    // Busy: the waiter gives up.
    const holder = await a.acquire('busy');
    tokens.push(await storedToken('busy'));
    const busy = await b.acquire('busy', { waitMs: 100 }).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(LockNotAcquiredError);
    texts.push(exposed(busy));
    expect(await holder.release()).toBe(true);

    // Lost: someone else's token took the key.
    const lost = await a.acquire('lost');
    tokens.push(await storedToken('lost'));
    await observer.set(lockRedisKeys('lock:', 'lost').writer, 'intruder 1', 'PX', 5_000);
    expect(await lost.extend()).toBe(false);
    expect(lost.signal.reason).toBeInstanceOf(LockLostError);
    texts.push(exposed(lost.signal.reason));
    // Releasing what is no longer held answers false and leaves the other's key alone.
    expect(await lost.release()).toBe(false);
    expect(await observer.get(lockRedisKeys('lock:', 'lost').writer)).toBe('intruder 1');
    await observer.del(lockRedisKeys('lock:', 'lost').writer);

    texts.push(...events, logger.text);
    const all = texts.join('\n');
    for (const token of tokens) expect(all).not.toContain(token);
    expect(all).not.toMatch(tokenLike);
    // The texts are really there: an empty capture would prove nothing.
    expect(all).toMatch(/Lock "busy" is held elsewhere/);
    expect(all).toMatch(/Lock "lost" was lost/);
  });

  it('never appear when the connection fails during an acquire', async () => {
    const server = await RedisServer.start();
    const captured = new CapturedLogger();
    const app = await createLoggedApp(
      {
        options: { connection: server.url, transactions: { readyTimeoutMs: 300 } },
      },
      captured,
    );
    try {
      const locks = app.get(LockService);
      // Warm up the lock connection, then freeze the server so the acquire's reply never comes.
      await locks.using('warm', () => undefined);
      server.pause();
      const acquiring = locks.acquire('cut', { waitMs: 0 }).catch((e: unknown) => e);
      await server.kill();
      const error = await acquiring;
      expect(error).toBeInstanceOf(RedisTxError);
      const retry = await locks.acquire('cut', { waitMs: 0 }).catch((e: unknown) => e);
      expect(retry).toBeInstanceOf(RedisTxError);
      const all = [exposed(error), exposed(retry), captured.text].join('\n');
      expect(all).not.toMatch(tokenLike);
      expect(captured.text).toMatch(/Redis .* connection/);
    } finally {
      await app.close();
      await server.stop();
    }
  });
});
