import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LockService, RedisTxModule } from '../../../lib/index.js';
import { ttlMs, type Contender } from './contender.js';

/** This library at its defaults: `LockService.acquire` / `release` in a Nest application. */
export const ours: Contender = {
  name: 'nestjs-redis-tx',
  kind: 'ours',
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
