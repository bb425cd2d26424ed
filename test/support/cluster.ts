import { RedisCluster, type RedisClusterOptions } from '../../tools/redis-cluster.js';

export interface RedisClusterBed {
  /** The started cluster; read it inside a hook or a test, not at describe time. */
  readonly cluster: RedisCluster;
  /**
   * Runs `fn` after the block's tests and before the cluster stops, so that
   * clients are closed while their nodes still answer (see `useRedisServer`).
   */
  beforeStop(fn: () => unknown): void;
}

/** A Redis Cluster for the enclosing describe block: started in beforeAll, stopped in afterAll even when tests fail. */
export function useRedisCluster(options?: RedisClusterOptions): RedisClusterBed {
  let started: RedisCluster | undefined;
  const closers: (() => unknown)[] = [];

  beforeAll(async () => {
    // RedisCluster.start stops whatever it started before it rejects.
    started = await RedisCluster.start(options);
  }, 60_000);

  afterAll(async () => {
    try {
      for (const close of closers.reverse()) await close();
    } finally {
      await started?.stop();
    }
  });

  return {
    beforeStop: (fn: () => unknown) => void closers.push(fn),
    get cluster(): RedisCluster {
      if (!started) {
        throw new Error(
          'useRedisCluster: the cluster starts in beforeAll; read it inside a hook or a test',
        );
      }
      return started;
    },
  };
}
