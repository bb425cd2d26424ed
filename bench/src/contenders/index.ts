import type { Contender } from './contender.js';
import { anchanNestRedlock } from './nest-redlock.js';
import { nestjsRedisLockPeers } from './nestjs-redis-lock.js';
import { ours } from './ours.js';
import { rawIoredis } from './raw.js';
import { nestjsRedlockUniversal, redlockUniversal } from './redlock-universal.js';
import { redisSemaphore } from './redis-semaphore.js';

export type { Contender, LockClient } from './contender.js';
export { ours, rawIoredis };

/** Every other library, each at its defaults and tuned. */
export const peers: Contender[] = [
  ...redlockUniversal,
  ...nestjsRedlockUniversal,
  ...nestjsRedisLockPeers,
  ...redisSemaphore,
  ...anchanNestRedlock,
];

export const contenders: Contender[] = [rawIoredis, ours, ...peers];
