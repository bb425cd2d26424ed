import { ReplicatedRedis, type ReplicatedRedisOptions } from '../../tools/redis-replication.js';
import { useStarted } from './started.js';

export interface ReplicatedBed {
  /** The started setup; read it inside a hook or a test, not at describe time. */
  readonly redis: ReplicatedRedis;
  /** Runs `fn` after the block's tests and before the servers stop (see `useStarted`). */
  beforeStop(fn: () => unknown): void;
}

/** A master, its replicas and Sentinels for the enclosing describe block, stopped in afterAll even when tests fail. */
export function useReplicatedRedis(options?: ReplicatedRedisOptions): ReplicatedBed {
  const bed = useStarted('useReplicatedRedis', () => ReplicatedRedis.start(options));
  return {
    beforeStop: bed.beforeStop,
    get redis() {
      return bed.started;
    },
  };
}
