import { existsSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { RedisSentinel, RedisServer, freePort } from '../tools/redis-server.js';
import { useRedisServer, useRedisServers } from './support/redis.js';
import { probePid } from './support/pids.js';

/** Runs `fn` with a client that is disconnected afterwards, whatever happens. */
async function withClient<T>(
  target: { host: string; port: number },
  fn: (client: Redis) => Promise<T>,
  options: RedisOptions = {},
): Promise<T> {
  const client = new Redis({ host: target.host, port: target.port, ...options });
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

describe('RedisServer', () => {
  const bed = useRedisServer();

  it('answers PING from ioredis at its url', async () => {
    expect(bed.server.url).toBe(`redis://127.0.0.1:${bed.server.port}`);
    const client = new Redis(bed.server.url);
    try {
      expect(await client.ping()).toBe('PONG');
    } finally {
      await client.quit();
    }
    await expect(bed.server.ping()).resolves.toBeUndefined();
  });

  it('keeps nothing on disk: no save points, no AOF, its own temp dir', async () => {
    await withClient(bed.server, async (client) => {
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
      const [, dir] = (await client.config('GET', 'dir')) as string[];
      expect(existsSync(dir!)).toBe(true);
    });
  });

  it('gives a clear error, with the server output, when redis-server refuses to start', async () => {
    const start = RedisServer.start({ args: ['--no-such-directive', 'yes'] });
    await expect(start).rejects.toThrow(/exited before it was ready[\s\S]*no-such-directive/);
  });

  it('gives a clear error when the port is taken', async () => {
    const start = RedisServer.start({ port: bed.server.port });
    await expect(start).rejects.toThrow(/exited before it was ready[\s\S]*already in use/i);
    await bed.server.ping();
  });
});

describe('useRedisServer', () => {
  const bed = useRedisServer();
  let readEarly: unknown;
  try {
    void bed.server;
  } catch (error) {
    readEarly = error;
  }

  it('throws a clear error when read before beforeAll, and gives the server after', () => {
    expect(readEarly).toBeInstanceOf(Error);
    expect((readEarly as Error).message).toMatch(/useRedisServer.*beforeAll/);
    expect(bed.server).toBeInstanceOf(RedisServer);
  });
});

describe('two servers', () => {
  const bed = useRedisServers(2);

  it('get different ports and do not share data', async () => {
    const [first, second] = bed.servers;
    expect(bed.servers).toHaveLength(2);
    expect(first!.port).not.toBe(second!.port);
    await withClient(first!, async (one) =>
      withClient(second!, async (other) => {
        await one.set('only-here', '1');
        expect(await one.get('only-here')).toBe('1');
        expect(await other.exists('only-here')).toBe(0);
      }),
    );
  });
});

describe('pause and resume', () => {
  const bed = useRedisServer();

  it('a paused server lets commands time out, and answers them once resumed', async () => {
    await withClient(
      bed.server,
      async (client) => {
        expect(await client.ping()).toBe('PONG');
        bed.server.pause();
        try {
          await expect(client.ping()).rejects.toThrow(/timed out/i);
        } finally {
          bed.server.resume();
        }
        expect(await client.ping()).toBe('PONG');
        await bed.server.ping();
      },
      { commandTimeout: 200 },
    );
  });
});

describe('kill and restart', () => {
  const bed = useRedisServer({ args: ['--enable-debug-command', 'yes'] });

  it('comes back empty on the same port with the same args after kill()', async () => {
    const { port, pid } = bed.server;
    await withClient(bed.server, async (client) => {
      await client.set('before-crash', '1');
    });

    await bed.server.kill();
    expect(probePid(pid)).toMatchObject({ code: 'ESRCH' });
    await expect(bed.server.ping()).rejects.toThrow(/ECONNREFUSED/);
    await bed.server.kill(); // already dead: a no-op

    await bed.server.restart();
    expect(bed.server.port).toBe(port);
    expect(bed.server.pid).not.toBe(pid);
    await bed.server.ping();
    await withClient(bed.server, async (client) => {
      expect(await client.dbsize()).toBe(0);
      const [, debug] = (await client.config('GET', 'enable-debug-command')) as string[];
      expect(debug).toBe('yes');
    });
  });

  it('restarts after stop() too', async () => {
    await bed.server.stop();
    await bed.server.restart();
    await bed.server.ping();
  });
});

describe('stop', () => {
  it('ends the process, removes its temp dir, and can be called twice', async () => {
    const server = await RedisServer.start({ port: await freePort() });
    const dir = await withClient(server, async (client) => {
      const [, dir] = (await client.config('GET', 'dir')) as string[];
      return dir!;
    });
    expect(probePid(server.pid)).toBeUndefined();

    await server.stop();
    expect(probePid(server.pid)).toMatchObject({ code: 'ESRCH' });
    expect(existsSync(dir)).toBe(false);
    await server.stop();
  });

  it('stops a paused server', async () => {
    const server = await RedisServer.start();
    server.pause();
    await server.stop();
    expect(probePid(server.pid)).toMatchObject({ code: 'ESRCH' });
  });
});

describe('RedisSentinel', () => {
  const bed = useRedisServer();

  it('monitors the master it was started on', async () => {
    const sentinel = await RedisSentinel.start(bed.server, { masterName: 'primary' });
    try {
      expect(sentinel.masterName).toBe('primary');
      expect(sentinel.port).not.toBe(bed.server.port);
      await withClient(sentinel, async (client) => {
        const address = await client.call('SENTINEL', 'get-master-addr-by-name', 'primary');
        expect(address).toEqual(['127.0.0.1', String(bed.server.port)]);
      });
    } finally {
      await sentinel.stop();
    }
    expect(probePid(sentinel.pid)).toMatchObject({ code: 'ESRCH' });
  });

  it("is named 'mymaster' by default", async () => {
    const sentinel = await RedisSentinel.start(bed.server);
    try {
      expect(sentinel.masterName).toBe('mymaster');
    } finally {
      await sentinel.stop();
    }
  });
});
