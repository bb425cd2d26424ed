import 'reflect-metadata';
import { Redis } from 'ioredis';
import { CommandGuard } from '../../lib/connection/command-guard.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

/** What the test reads of the guard: the commands it still watches. */
type Watched = { inFlight: { list(): unknown[] } };

describe('CommandGuard', () => {
  const bed = useRedisServer();
  useUnhandledRejections();

  it('lets go of answered commands as new ones are sent, not only at its next sweep', async () => {
    const redis = new Redis(bed.server.url);
    try {
      // A deadline far beyond the test: no sweep runs while it does.
      const guard = new CommandGuard(redis, 600_000) as unknown as Watched;
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => redis.set(`guard:${i}`, batch)));
      }
      await redis.get('guard:0');
      // The last command sent may still be listed; the thousand before it, answered, are not.
      expect(guard.inFlight.list().length).toBeLessThanOrEqual(1);
    } finally {
      await redis.quit();
    }
  });
});
