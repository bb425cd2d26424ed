import 'reflect-metadata';
import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { LockService, RedisTx } from '../../lib/index.js';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

/** Counts the socket writes (system calls) a connection makes, and the most commands one carried. */
function countWrites(redis: Redis): {
  writes: () => number;
  mostInOne: () => number;
  stop: () => void;
} {
  const socket = redis.stream as Socket & {
    _write: (...args: unknown[]) => void;
    _writev: (...args: unknown[]) => void;
  };
  const { _write: write, _writev: writev } = socket;
  let writes = 0;
  let mostInOne = 0;
  socket._write = function (...args) {
    writes++;
    mostInOne = Math.max(mostInOne, 1);
    write.apply(this, args);
  };
  socket._writev = function (...args) {
    writes++;
    // One chunk per command written while the socket was corked.
    mostInOne = Math.max(mostInOne, (args[0] as unknown[]).length);
    writev.apply(this, args);
  };
  return {
    writes: () => writes,
    mostInOne: () => mostInOne,
    stop: () => {
      socket._write = write;
      socket._writev = writev;
    },
  };
}

describe('write coalescing on the library’s connections', () => {
  const bed = useRedisServer();
  useUnhandledRejections();
  const apps: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  const open = async () => {
    const app = await createTestApp({ options: { connection: bed.server.url } });
    apps.push(app);
    return app;
  };

  it('sends the lock commands of one tick in one write while replies are outstanding', async () => {
    const app = await open();
    const locks = app.get(LockService);
    await (await locks.acquire('warm')).release();
    const counter = countWrites(app.get(RedisConnections).locks.redis as Redis);
    const lanes = 64;
    const rounds = 5;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let round = 0; round < rounds; round++) {
          const lock = await locks.acquire(`coalesce:${lane}`);
          expect(lock.fencingToken).toBeGreaterThan(0);
          expect(await lock.release()).toBe(true);
        }
      }),
    );
    counter.stop();
    // Two commands a cycle, one write apiece without coalescing.
    expect(counter.writes()).toBeLessThan((lanes * rounds * 2) / 4);
  });

  it('writes a busy tick in groups of at most 16 commands, so that Redis starts on the first while the rest are issued', async () => {
    const app = await open();
    const locks = app.get(LockService);
    const hold = await locks.acquire('busy');
    // An answer outstanding: the connection is busy, so the next tick's commands are held back.
    const outstanding = locks.isLocked('busy');
    const counter = countWrites(app.get(RedisConnections).locks.redis as Redis);
    const taken = await Promise.all(
      Array.from({ length: 64 }, (_, lane) => locks.acquire(`group:${lane}`)),
    );
    counter.stop();
    expect(await outstanding).toBe(true);
    expect(counter.mostInOne()).toBe(16);
    expect(counter.writes()).toBeGreaterThanOrEqual(64 / 16);
    await Promise.all([hold, ...taken].map((lock) => lock.release()));
  });

  it('writes a lone command at once: an idle connection holds nothing back', async () => {
    const app = await open();
    const locks = app.get(LockService);
    await (await locks.acquire('warm')).release();
    const counter = countWrites(app.get(RedisConnections).locks.redis as Redis);
    for (let i = 0; i < 10; i++) await (await locks.acquire('alone')).release();
    counter.stop();
    expect(counter.writes()).toBe(20);
  });

  it('keeps each transaction whole when many share the connection', async () => {
    const app = await open();
    const tx = app.get(RedisTx);
    await tx.run(() => void tx.multi.set('warm', 1));
    const counter = countWrites(app.get(RedisConnections).transactions.redis as Redis);
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        tx.run(() => {
          tx.multi.incr('coalesce:count').set(`coalesce:tx:${i}`, i).get(`coalesce:tx:${i}`);
        }),
      ),
    );
    counter.stop();
    results.forEach(({ replies }, i) => expect(replies?.slice(1)).toEqual(['OK', String(i)]));
    expect(counter.writes()).toBeLessThan(64 / 4);
    expect(await tx.run(() => void tx.multi.get('coalesce:count'))).toMatchObject({
      replies: ['64'],
    });
  });
});
