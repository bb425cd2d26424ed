import 'reflect-metadata';
import { once } from 'node:events';
import type { INestApplication } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { Cluster } from 'ioredis';
import { channelNames, type Lock, LockLostError, LockService } from '../../lib/index.js';
import { RedisTxHealthIndicator, RedisTxHealthModule } from '../../lib/terminus/index.js';
import { useRedisCluster } from '../support/cluster.js';
import { createTestApp } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';

describe('inspect, forceRelease and the lock-age check on Redis Cluster', () => {
  const bed = useRedisCluster();
  let first: INestApplication;
  let second: INestApplication;
  let observer: Cluster;

  beforeAll(async () => {
    observer = new Cluster(bed.cluster.startupNodes, { lazyConnect: true });
    await observer.connect();
    const options = { connection: { cluster: bed.cluster.startupNodes } };
    first = await createTestApp({ options });
    second = await createTestApp({ options, imports: [TerminusModule, RedisTxHealthModule] });
  });
  bed.beforeStop(async () => {
    await first?.close();
    await second?.close();
    await observer?.quit();
  });

  it('shows the holder and the line, and a forced release serves the line on the lock’s shard', async () => {
    const held = await first.get(LockService).acquire('alpha', { ttlMs: 3_000 });
    const waitAnnounced = nextEvent(channelNames.lockWait);
    const waiting = second.get(LockService).acquire('alpha', { waitMs: 30_000 });
    waiting.catch(() => undefined);
    await waitAnnounced;

    const seen = await second.get(LockService).inspect('alpha');
    expect(seen.holders).toEqual([
      expect.objectContaining({ mode: 'write', fencingToken: held.fencingToken }),
    ]);
    expect(seen.waiting).toEqual([expect.objectContaining({ mode: 'write' })]);

    const forced = await second.get(LockService).forceRelease('alpha');
    expect(forced.evicted).toBe(1);
    const next = await waiting;
    expect(next.fencingToken).toBeGreaterThan(forced.fencingToken);
    const loss = await lossOf(held);
    expect(loss.reason).toBe('force-released');
    expect(await next.release()).toBe(true);
  });

  it('scans every master for held locks', async () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const held = await Promise.all(names.map((n) => first.get(LockService).acquire(n)));
    // The names were picked to land on several masters: a scan of one would miss some.
    const perMaster = await Promise.all(
      observer.nodes('master').map((node) => node.keys('lock:{*}')),
    );
    const masters = perMaster.filter((keys) => keys.length > 0);
    expect(masters.length).toBeGreaterThan(1);
    const result = await second
      .get(RedisTxHealthIndicator)
      .locksHeldWithin('locks', { maxHeldMs: 60_000 });
    expect(result.locks).toMatchObject({
      status: 'up',
      checked: names.length,
      complete: true,
      overdue: [],
    });
    await Promise.all(held.map((lock) => lock.release()));
  });
});

async function lossOf(lock: Lock): Promise<LockLostError> {
  if (!lock.signal.aborted) await once(lock.signal, 'abort');
  return lock.signal.reason as LockLostError;
}
