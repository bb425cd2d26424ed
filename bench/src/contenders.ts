import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Redlock as SesameRedlock } from '@sesamecare-oss/redlock';
import { Mutex } from 'redis-semaphore';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { LockService, RedisTxModule } from '../../lib/index.js';

/** A lock implementation as the benchmark drives it. */
export interface LockClient {
  /** Resolves once the lock is held, with the function that releases it. */
  lock(key: string): Promise<() => Promise<unknown>>;
  close(): Promise<void>;
}

export interface Contender {
  name: string;
  open(url: string): Promise<LockClient>;
}

const ttlMs = 10_000;

const releaseScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** SET NX PX and a compare-and-delete script, written by hand: the practical floor. */
export const rawIoredis: Contender = {
  name: 'raw ioredis (hand-written)',
  async open(url) {
    const redis = new Redis(url, {
      scripts: { unlockIfOwner: { lua: releaseScript, numberOfKeys: 1 } },
    }) as Redis & { unlockIfOwner(key: string, token: string): Promise<number> };
    return {
      async lock(key) {
        const token = randomBytes(16).toString('hex');
        // Polls every millisecond when busy: the floor has no wake-up mechanism.
        while ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        return () => redis.unlockIfOwner(key, token);
      },
      close: async () => void (await redis.quit()),
    };
  },
};

export const ours: Contender = {
  name: 'nestjs-redis-tx',
  async open(url) {
    const app: INestApplicationContext = await NestFactory.createApplicationContext(
      RedisTxModule.forRoot({ connection: url, locks: { ttlMs, waitMs: 60_000 } }),
      { logger: false },
    );
    const locks = app.get(LockService);
    return {
      async lock(key) {
        const lock = await locks.acquire(key);
        return () => lock.release();
      },
      close: () => app.close(),
    };
  },
};

/** What the two Redlock implementations have in common. */
interface RedlockLike {
  acquire(keys: string[], ttl: number): Promise<{ release(): Promise<unknown> }>;
}

function redlockContender(name: string, make: (redis: Redis) => RedlockLike): Contender {
  return {
    name,
    async open(url) {
      const redis = new Redis(url);
      const redlock = make(redis);
      return {
        async lock(key) {
          // Retries run out under contention at default settings: start over until it holds.
          for (;;) {
            try {
              const lock = await redlock.acquire([key], ttlMs);
              return () => lock.release();
            } catch {
              continue;
            }
          }
        },
        close: async () => void (await redis.quit()),
      };
    },
  };
}

export const sesameRedlockDefault = redlockContender(
  '@sesamecare-oss/redlock (default: 200 ms retry)',
  (redis) => new SesameRedlock([redis]),
);
export const sesameRedlockTuned = redlockContender(
  '@sesamecare-oss/redlock (tuned: 2 ms retry)',
  (redis) => new SesameRedlock([redis], { retryDelay: 2, retryJitter: 2, retryCount: -1 }),
);
// Its ESM build imports files without extensions, which Node refuses; its
// CommonJS build loads. RedlockService extends redlock 5.
type RedlockServiceClass = new (options: { clients: Redis[]; settings?: object }) => RedlockLike;
const loadRedlockService = (): RedlockServiceClass =>
  (
    createRequire(import.meta.url)('@anchan828/nest-redlock') as {
      RedlockService: RedlockServiceClass;
    }
  ).RedlockService;

export const nestRedlockDefault = redlockContender(
  '@anchan828/nest-redlock (default: 200 ms retry)',
  (redis) => new (loadRedlockService())({ clients: [redis] }),
);
export const nestRedlockTuned = redlockContender(
  '@anchan828/nest-redlock (tuned: 2 ms retry)',
  (redis) =>
    new (loadRedlockService())({
      clients: [redis],
      settings: { retryDelay: 2, retryJitter: 2, retryCount: -1 },
    }),
);

function semaphoreContender(name: string, retryInterval?: number): Contender {
  return {
    name,
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

export const semaphoreDefault = semaphoreContender('redis-semaphore Mutex (default: 10 ms retry)');
export const semaphoreTuned = semaphoreContender('redis-semaphore Mutex (tuned: 1 ms retry)', 1);

export const peers: Contender[] = [
  sesameRedlockDefault,
  sesameRedlockTuned,
  semaphoreDefault,
  semaphoreTuned,
  nestRedlockDefault,
  nestRedlockTuned,
];
