import { NestFactory } from '@nestjs/core';
import { RedlockModule, RedlockService } from '@nestjs-redis/lock';
import { createClient } from 'redis';
import { ttlMs, tunedRetryMs, untilHeld, type Contender } from './contender.js';

type Config = NonNullable<Parameters<typeof RedlockModule.forRoot>[0]['redlockConfig']>;
type Client = Parameters<typeof RedlockModule.forRoot>[0]['clients'][number];

/** Its `RedlockService` (@redis-kit/lock) in a Nest application, on node-redis as it requires. */
function nestjsRedisLock(name: string, redlockConfig: Config): Contender {
  return {
    name,
    kind: 'peer',
    async open(url) {
      const client = createClient({ url });
      await client.connect();
      const app = await NestFactory.createApplicationContext(
        // It is typed against node-redis 5 (its own copy); node-redis 6 has the same `eval`.
        RedlockModule.forRoot({ clients: [client as unknown as Client], redlockConfig }),
        { logger: false },
      );
      const redlock = app.get(RedlockService);
      return {
        async lock(key) {
          const lock = await untilHeld(() => redlock.acquire(key, ttlMs));
          return () => lock.release();
        },
        async close() {
          await app.close();
          await client.close();
        },
      };
    },
  };
}

export const nestjsRedisLockPeers: Contender[] = [
  nestjsRedisLock('@nestjs-redis/lock, node-redis (default: 3 × 200 ms retry)', {}),
  nestjsRedisLock(`@nestjs-redis/lock, node-redis (tuned: ${tunedRetryMs} ms retry)`, {
    maxRetryAttempts: 1_000_000,
    retryDelayMs: tunedRetryMs,
    retryJitterMs: tunedRetryMs,
  }),
];
