import { Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import {
  RedlockModule,
  RedlockService,
  IoredisAdapter as NestIoredisAdapter,
} from 'nestjs-redlock-universal';
import { createClient } from 'redis';
import { createLock, IoredisAdapter, NodeRedisAdapter, type RedisAdapter } from 'redlock-universal';
import { ttlMs, tunedRetryMs, untilHeld, type Contender } from './contender.js';

/** Retry settings passed to redlock-universal; none at all means its defaults (3 × 100 ms). */
interface Retry {
  retryAttempts?: number;
  retryDelay?: number;
}

// Enough attempts that a tuned acquire waits instead of giving up.
const tuned: Retry = { retryAttempts: 1_000_000, retryDelay: tunedRetryMs };

/** `createLock` (a SimpleLock at the standard performance mode) per acquisition, as its README shows. */
function simpleLock(
  name: string,
  retry: Retry,
  connect: (url: string) => Promise<{ adapter: RedisAdapter; close(): Promise<void> }>,
): Contender {
  return {
    name,
    kind: 'peer',
    async open(url) {
      const { adapter, close } = await connect(url);
      return {
        async lock(key) {
          const lock = createLock({ adapter, key, ttl: ttlMs, ...retry });
          const handle = await untilHeld(() => lock.acquire());
          return () => lock.release(handle);
        },
        close,
      };
    },
  };
}

async function onIoredis(url: string) {
  const redis = new Redis(url);
  return { adapter: new IoredisAdapter(redis), close: async () => void (await redis.quit()) };
}

async function onNodeRedis(url: string) {
  const client = createClient({ url });
  await client.connect();
  return { adapter: new NodeRedisAdapter(client), close: () => client.close() };
}

export const redlockUniversal: Contender[] = [
  simpleLock('redlock-universal, ioredis (default: 3 × 100 ms retry)', {}, onIoredis),
  simpleLock(`redlock-universal, ioredis (tuned: ${tunedRetryMs} ms retry)`, tuned, onIoredis),
  simpleLock('redlock-universal, node-redis (default: 3 × 100 ms retry)', {}, onNodeRedis),
  simpleLock(`redlock-universal, node-redis (tuned: ${tunedRetryMs} ms retry)`, tuned, onNodeRedis),
];

@Module({})
class NestRedlockUniversalBench {
  static on(redis: Redis, retry: Retry): DynamicModule {
    return {
      module: NestRedlockUniversalBench,
      imports: [
        RedlockModule.forRoot({
          nodes: [new NestIoredisAdapter(redis)],
          defaultTtl: ttlMs,
          ...retry,
        }),
      ],
    };
  }
}

/** Its `RedlockService` in a Nest application, on ioredis like this library. */
function nestRedlockUniversal(name: string, retry: Retry): Contender {
  return {
    name,
    kind: 'peer',
    async open(url) {
      const redis = new Redis(url);
      const app = await NestFactory.createApplicationContext(
        NestRedlockUniversalBench.on(redis, retry),
        { logger: false },
      );
      const redlock = app.get(RedlockService);
      return {
        async lock(key) {
          const handle = await untilHeld(() => redlock.acquire(key));
          return () => redlock.release(key, handle);
        },
        async close() {
          await app.close();
          await redis.quit();
        },
      };
    },
  };
}

export const nestjsRedlockUniversal: Contender[] = [
  nestRedlockUniversal('nestjs-redlock-universal (default: 3 × 100 ms retry)', {}),
  nestRedlockUniversal(`nestjs-redlock-universal (tuned: ${tunedRetryMs} ms retry)`, tuned),
];
