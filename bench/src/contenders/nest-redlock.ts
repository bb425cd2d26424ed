import { createRequire } from 'node:module';
import { NestFactory } from '@nestjs/core';
import type * as NestRedlock from '@anchan828/nest-redlock';
import { Redis } from 'ioredis';
import { ttlMs, tunedRetryMs, untilHeld, type Contender } from './contender.js';

// Its ESM build imports files without extensions, which Node refuses; its
// CommonJS build loads.
const load = () => createRequire(import.meta.url)('@anchan828/nest-redlock') as typeof NestRedlock;

type Settings = NonNullable<NestRedlock.RedlockModuleOptions['settings']>;

/** The part of redlock 5 used here (its own types do not resolve from an ES module). */
interface Redlock5 {
  acquire(keys: string[], duration: number): Promise<{ release(): Promise<unknown> }>;
}

/** `RedlockService` (redlock 5) from `RedlockModule.register`, in a Nest application. */
function nestRedlock(name: string, settings: Settings): Contender {
  return {
    name,
    kind: 'peer',
    async open(url) {
      const { RedlockModule, RedlockService } = load();
      const app = await NestFactory.createApplicationContext(
        RedlockModule.register({ clients: [new Redis(url)], settings }),
        { logger: false },
      );
      const redlock = app.get<NestRedlock.RedlockService, Redlock5>(RedlockService);
      return {
        async lock(key) {
          const lock = await untilHeld(() => redlock.acquire([key], ttlMs));
          return () => lock.release();
        },
        // The module quits its clients on shutdown.
        close: () => app.close(),
      };
    },
  };
}

export const anchanNestRedlock: Contender[] = [
  nestRedlock('@anchan828/nest-redlock (default: 10 × 200 ms retry)', {}),
  nestRedlock(`@anchan828/nest-redlock (tuned: ${tunedRetryMs} ms retry)`, {
    retryCount: -1,
    retryDelay: tunedRetryMs,
    retryJitter: tunedRetryMs,
  }),
];
