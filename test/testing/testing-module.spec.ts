import 'reflect-metadata';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  InvalidOptionsError,
  Locked,
  LockService,
  RedisTx,
  Transactional,
} from '../../lib/index.js';
import { LOCK_STORE } from '../../lib/locks/lock-store.js';
import { InMemoryLocks } from '../../lib/testing/in-memory-locks.js';
import {
  NoRedisInTestError,
  RedisServerError,
  RedisTxTestingModule,
  TestRedis,
  ThrowawayRedis,
} from '../../lib/testing/index.js';
import { CapturedLogger } from '../support/captured-logger.js';
import { ForkedWorker } from '../support/forked-worker.js';
import { probePid } from '../support/pids.js';
import { useRedisServer } from '../support/redis.js';
import { createTestingApp } from '../support/testing-app.js';

const worker = fileURLToPath(new URL('./fixtures/throwaway-worker.mjs', `file://${__filename}`));

@Injectable()
class Counter {
  constructor(private readonly redis: RedisTx) {}

  @Transactional()
  async bump(key: string): Promise<void> {
    this.redis.multi.incr(key);
  }

  @Locked((key: string) => `counter:${key}`, { waitMs: 0 })
  async guarded(key: string): Promise<string> {
    return key;
  }
}

/** Whether `pid` has exited: no such process, or one that only waits to be reaped (a zombie, reparented). */
function exited(pid: number): boolean {
  if (probePid(pid) !== undefined) return true;
  try {
    // The state follows the command name in parentheses.
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function valueAt(url: string, key: string): Promise<string | null> {
  const client = new Redis(url);
  try {
    return await client.get(key);
  } finally {
    client.disconnect();
  }
}

describe('RedisTxTestingModule with a throwaway server', () => {
  it('starts a redis-server of its own, runs transactions on it, and stops it by pid at app.close()', async () => {
    const logger = new CapturedLogger();
    const app = await createTestingApp({}, [Counter], logger);
    const { server, url } = app.get(TestRedis);
    expect(server).toBeDefined();
    expect(probePid(server!.pid)).toBeUndefined();
    await app.get(Counter).bump('hits');
    expect(await valueAt(url!, 'hits')).toBe('1');
    expect(app.get(LOCK_STORE)).not.toBeInstanceOf(InMemoryLocks);

    await app.close();
    expect(server!.running).toBe(false);
    expect(probePid(server!.pid)).toMatchObject({ code: 'ESRCH' });
    // Nothing the module logged on the way: no warning about a server going away.
    expect(logger.text).not.toMatch(/\[(warn|error)\]/);
  });

  it('gives each application its own server', async () => {
    const [a, b] = await Promise.all([createTestingApp({}), createTestingApp({})]);
    try {
      const [ra, rb] = [a.get(TestRedis), b.get(TestRedis)];
      expect(ra.server!.pid).not.toBe(rb.server!.pid);
      expect(ra.url).not.toBe(rb.url);
      await a.get(RedisTx).client.set('mine', 'a');
      expect(await b.get(RedisTx).client.get('mine')).toBeNull();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('takes locks in memory and transactions on the server with lockStore: in-memory and redis: throwaway', async () => {
    const app = await createTestingApp({ lockStore: 'in-memory', redis: 'throwaway' }, [Counter]);
    try {
      expect(app.get(LOCK_STORE)).toBeInstanceOf(InMemoryLocks);
      const lock = await app.get(LockService).acquire('memory-only');
      await app.get(Counter).bump('hits');
      const client = new Redis(app.get(TestRedis).url!);
      try {
        // Nothing of the lock is in Redis: only the transaction's key.
        expect(await client.keys('*')).toEqual(['hits']);
      } finally {
        client.disconnect();
      }
      await lock.release();
    } finally {
      await app.close();
    }
  });

  it('says what to do when redis-server cannot be found', async () => {
    const command = 'redis-server-that-is-not-installed';
    const starting = ThrowawayRedis.start({ command });
    await expect(starting).rejects.toThrow(RedisServerError);
    await expect(starting).rejects.toThrow(/not found.*PATH/);
  });

  it('leaves no server behind in a process that closes its app, and keeps no process alive', async () => {
    const child = ForkedWorker.start(worker, ['close']);
    const pid = Number((await child.line('pid ')).split(' ')[0]);
    expect(await child.line('closed')).toBe('gone');
    expect(await child.exitCode()).toBe(0);
    expect(exited(pid)).toBe(true);
  });

  it('kills a server nobody stopped when its process exits, and does not keep that process alive', async () => {
    const child = ForkedWorker.start(worker, ['abandon']);
    const [pid, port, state] = (await child.line('pid ')).split(' ');
    expect(state).toBe('alive');
    // A connection to the server closes when the server dies: the event to wait for.
    // It may end with a reset rather than a FIN (ECONNRESET, then 'close'), so the
    // wait is on 'close' alone: once() would reject on that 'error'.
    const connection = createConnection({ host: '127.0.0.1', port: Number(port) });
    connection.on('error', () => undefined);
    const serverGone = new Promise<void>((resolve) => connection.once('close', () => resolve()));
    await once(connection, 'connect');
    child.tell('end');
    // The process ends by itself: the server's handles are not what keeps it.
    expect(await child.exitCode()).toBe(0);
    await serverGone;
    expect(exited(Number(pid))).toBe(true);
  });
});

describe('RedisTxTestingModule with a URL', () => {
  const bed = useRedisServer();

  it('isolates applications by database, and empties its database when it starts', async () => {
    const a = await createTestingApp({ redis: bed.server.url, db: 3 });
    const b = await createTestingApp({ redis: bed.server.url, db: 4 });
    try {
      expect(a.get(TestRedis).url).toBe(`${bed.server.url}/3`);
      expect(a.get(TestRedis).server).toBeUndefined();
      await a.get(RedisTx).client.set('left', 'over');
      expect(await b.get(RedisTx).client.get('left')).toBeNull();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
    const again = await createTestingApp({ redis: bed.server.url, db: 3 });
    try {
      expect(await again.get(RedisTx).client.get('left')).toBeNull();
    } finally {
      await again.close();
    }
    // The server given is never stopped.
    await expect(bed.server.ping()).resolves.toBeUndefined();
  });

  it("uses Jest's worker number as the database when none is named", async () => {
    const app = await createTestingApp({ redis: bed.server.url });
    try {
      expect(app.get(TestRedis).url).toBe(
        `${bed.server.url}/${Number(process.env.JEST_WORKER_ID ?? 0)}`,
      );
    } finally {
      await app.close();
    }
  });
});

describe('RedisTxTestingModule without Redis', () => {
  it('runs locks in memory and refuses transactions with NoRedisInTestError', async () => {
    const app = await createTestingApp({ lockStore: 'in-memory' }, [Counter]);
    try {
      expect(app.get(TestRedis).url).toBeUndefined();
      const counter = app.get(Counter);
      await expect(counter.guarded('a')).resolves.toBe('a');
      await expect(counter.bump('hits')).rejects.toThrow(NoRedisInTestError);
      await expect(counter.bump('hits')).rejects.toThrow(/Counter\.bump needs Redis/);
      const tx = app.get(RedisTx);
      expect(tx.active).toBe(false);
      await expect(tx.run(() => undefined)).rejects.toThrow(NoRedisInTestError);
      expect(() => tx.client).toThrow(NoRedisInTestError);
    } finally {
      await app.close();
    }
  });

  it('refuses options that leave locks without a store, naming the option', () => {
    expect(() => RedisTxTestingModule.forRoot({ redis: false })).toThrow(InvalidOptionsError);
    expect(() => RedisTxTestingModule.forRoot({ redis: 'localhost:6379' })).toThrow(/`redis`/);
    expect(() => RedisTxTestingModule.forRoot({ redis: 'redis://127.0.0.1:1', db: 16 })).toThrow(
      /`db`/,
    );
    expect(() =>
      RedisTxTestingModule.forRoot({ lockStore: 'in-memory', locks: { ttl: 1 } } as never),
    ).toThrow(/locks\.ttl/);
  });
});
