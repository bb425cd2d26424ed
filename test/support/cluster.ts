import { RedisCluster, type RedisClusterOptions } from '../../tools/redis-cluster.js';
import { useStarted } from './started.js';

export interface RedisClusterBed {
  /** The started cluster; read it inside a hook or a test, not at describe time. */
  readonly cluster: RedisCluster;
  /** Runs `fn` after the block's tests and before the cluster stops (see `useStarted`). */
  beforeStop(fn: () => unknown): void;
}

/** A Redis Cluster for the enclosing describe block: started in beforeAll, stopped in afterAll even when tests fail. */
export function useRedisCluster(options?: RedisClusterOptions): RedisClusterBed {
  const bed = useStarted('useRedisCluster', () => RedisCluster.start(options));
  return {
    beforeStop: bed.beforeStop,
    get cluster() {
      return bed.started;
    },
  };
}
