import { RedisServer, type RedisServerOptions } from '../../tools/redis-server.js';

export interface RedisBed {
  /** The started server; read it inside a hook or a test, not at describe time. */
  readonly server: RedisServer;
  /**
   * Runs `fn` after the block's tests and before the server stops. Jest runs
   * afterAll hooks in the order they are declared, so clients closed in a
   * plain afterAll declared later would be closed after the server is gone.
   */
  beforeStop(fn: () => unknown): void;
}

export interface RedisBeds {
  /** The started servers, in order; read them inside a hook or a test. */
  readonly servers: RedisServer[];
  /** As {@link RedisBed.beforeStop}. */
  beforeStop(fn: () => unknown): void;
}

/** Starts `count` servers in beforeAll and stops them in afterAll, even when tests fail. */
function useServers(count: number, options: RedisServerOptions | undefined, caller: string) {
  let started: RedisServer[] | undefined;
  const closers: (() => unknown)[] = [];

  beforeAll(async () => {
    const results = await Promise.allSettled(
      Array.from({ length: count }, () => RedisServer.start(options)),
    );
    // Keep those that did start, so afterAll stops them even if another failed.
    started = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
  });

  afterAll(async () => {
    try {
      for (const close of closers.reverse()) await close();
    } finally {
      await Promise.all((started ?? []).map((server) => server.stop()));
    }
  });

  return {
    beforeStop: (fn: () => unknown) => void closers.push(fn),
    get servers(): RedisServer[] {
      if (!started) {
        throw new Error(
          `${caller}: the servers start in beforeAll; read them inside a hook or a test`,
        );
      }
      return started;
    },
  };
}

/** A redis-server for the enclosing describe block. */
export function useRedisServer(options?: RedisServerOptions): RedisBed {
  const bed = useServers(1, options, 'useRedisServer');
  return {
    beforeStop: bed.beforeStop,
    get server(): RedisServer {
      return bed.servers[0]!;
    },
  };
}

/** `count` independent redis-servers, each on its own port, for the enclosing describe block. */
export function useRedisServers(count: number, options?: RedisServerOptions): RedisBeds {
  return useServers(count, options, 'useRedisServers');
}
