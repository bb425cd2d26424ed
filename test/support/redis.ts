import { RedisServer, type RedisServerOptions } from '../../tools/redis-server.js';

export interface RedisBed {
  readonly server: RedisServer;
  /**
   * Runs `fn` after the block's tests and before the server stops. Jest runs
   * afterAll hooks in the order they are declared, so closing clients in a
   * plain afterAll would happen after the server is already gone.
   */
  beforeStop(fn: () => unknown): void;
}

/** Starts a redis-server for the enclosing describe block and stops it afterwards, even when a test fails. */
export function useRedisServer(options?: RedisServerOptions): RedisBed {
  let server: RedisServer | undefined;
  const closers: (() => unknown)[] = [];
  beforeAll(async () => {
    server = await RedisServer.start(options);
  });
  afterAll(async () => {
    try {
      for (const close of closers.reverse()) await close();
    } finally {
      await server?.stop();
    }
  });
  return {
    beforeStop: (fn) => closers.push(fn),
    get server(): RedisServer {
      if (!server)
        throw new Error(
          'useRedisServer: the server starts in beforeAll; read it inside a hook or test',
        );
      return server;
    },
  };
}

/** Starts `count` independent servers for the enclosing describe block. */
export function useRedisServers(
  count: number,
  options?: RedisServerOptions,
): { readonly servers: RedisServer[] } {
  const servers: RedisServer[] = [];
  beforeAll(async () => {
    servers.push(
      ...(await Promise.all(Array.from({ length: count }, () => RedisServer.start(options)))),
    );
  });
  afterAll(async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop()));
  });
  return { servers };
}
