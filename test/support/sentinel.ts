import { ReplicatedRedis, type ReplicatedRedisOptions } from '../../tools/redis-replication.js';

export interface ReplicatedBed {
  /** The started setup; read it inside a hook or a test, not at describe time. */
  readonly redis: ReplicatedRedis;
  /** Runs `fn` after the block's tests and before the servers stop (see RedisBed.beforeStop). */
  beforeStop(fn: () => unknown): void;
}

/** A master, its replicas and Sentinels for the enclosing describe block, stopped in afterAll even when tests fail. */
export function useReplicatedRedis(options?: ReplicatedRedisOptions): ReplicatedBed {
  let started: ReplicatedRedis | undefined;
  const closers: (() => unknown)[] = [];

  beforeAll(async () => {
    started = await ReplicatedRedis.start(options);
  }, 60_000);

  afterAll(async () => {
    try {
      for (const close of closers.reverse()) await close();
    } finally {
      await started?.stop();
    }
  }, 30_000);

  return {
    beforeStop: (fn) => void closers.push(fn),
    get redis(): ReplicatedRedis {
      if (!started) {
        throw new Error(
          'useReplicatedRedis: the servers start in beforeAll; read them inside a hook or a test',
        );
      }
      return started;
    },
  };
}
