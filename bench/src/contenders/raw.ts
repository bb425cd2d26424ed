import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ttlMs, type Contender } from './contender.js';

const releaseScript = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type ScriptedRedis = Redis & { unlockIfOwner(key: string, token: string): Promise<number> };

/** SET NX PX and a compare-and-delete script, written by hand: the practical floor. */
export const rawIoredis: Contender = {
  name: 'raw ioredis (hand-written)',
  kind: 'floor',
  async open(url) {
    const redis = new Redis(url, {
      scripts: { unlockIfOwner: { lua: releaseScript, numberOfKeys: 1 } },
    }) as ScriptedRedis;
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
