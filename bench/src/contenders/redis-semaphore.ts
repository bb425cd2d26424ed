import { Redis } from 'ioredis';
import { Mutex } from 'redis-semaphore';
import { ttlMs, tunedRetryMs, type Contender } from './contender.js';

/** A `Mutex` per acquisition, as its README shows; it refreshes the lock on a timer while held. */
function semaphore(name: string, retryInterval?: number): Contender {
  return {
    name,
    kind: 'peer',
    async open(url) {
      const redis = new Redis(url);
      return {
        async lock(key) {
          const mutex = new Mutex(redis, key, {
            lockTimeout: ttlMs,
            acquireTimeout: 60_000,
            ...(retryInterval === undefined ? {} : { retryInterval }),
          });
          await mutex.acquire();
          return () => mutex.release();
        },
        close: async () => void (await redis.quit()),
      };
    },
  };
}

export const redisSemaphore: Contender[] = [
  semaphore('redis-semaphore Mutex (default: 10 ms retry)'),
  semaphore(`redis-semaphore Mutex (tuned: ${tunedRetryMs} ms retry)`, tunedRetryMs),
];
