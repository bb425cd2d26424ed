import 'reflect-metadata';
import { Redis } from 'ioredis';
import { channelNames, LockNotAcquiredError, LockService } from '../../lib/index.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';
import { useRedisServer } from '../support/redis.js';

describe('shutdown with locks held', () => {
  const bed = useRedisServer();

  it('releases every lock, ends every wait, and leaves no lock key and no open handle', async () => {
    const observer = new Redis(bed.server.url);
    const other = await createTestApp({ options: { connection: bed.server.url } });
    const baseline = countResources();
    const app = await createTestApp({
      options: { connection: bed.server.url, locks: { ttlMs: 60_000 } },
    });
    const locks = app.get(LockService);

    await locks.acquire('held');
    await locks.acquire(['multi:a', 'multi:b'], { mode: 'read' });
    let finishWork!: () => void;
    const running = locks.using(
      'in-use',
      () => new Promise<void>((resolve) => (finishWork = resolve)),
    );
    const foreign = await other.get(LockService).acquire('foreign');
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = locks.acquire('foreign', { waitMs: 60_000 }).catch((e: unknown) => e);
    await waitAnnounced; // the waiter is in line: shut down now

    await app.close();

    expect(await waiting).toBeInstanceOf(LockNotAcquiredError);
    finishWork();
    await running;
    await foreign.release();
    await other.close();
    // Only the fencing counter, which must keep increasing, outlives the locks.
    expect((await observer.keys('lock:*')).sort()).toEqual(['lock:fence']);
    await observer.quit();
    expect(countResources()).toEqual(baseline);
  });
});

function countResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    // A socket being shut down shows this request briefly; the socket itself is counted.
    if (kind === 'TTYWrap' || kind === 'SimpleShutdownWrap') continue;
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}
