import 'reflect-metadata';
import type { Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { LockService, RedisTx } from '../../lib/index.js';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

/** Counts the socket writes (system calls) a connection makes, however many commands each carries. */
function countWrites(redis: Redis): { writes: () => number; stop: () => void } {
  const socket = redis.stream as Socket & {
    _write: (...args: unknown[]) => void;
    _writev: (...args: unknown[]) => void;
  };
  const { _write: write, _writev: writev } = socket;
  let writes = 0;
  socket._write = function (...args) {
    writes++;
    write.apply(this, args);
  };
  socket._writev = function (...args) {
    writes++;
    writev.apply(this, args);
  };
  return {
    writes: () => writes,
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
