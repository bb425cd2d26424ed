import 'reflect-metadata';
import { once } from 'node:events';
import type { INestApplication } from '@nestjs/common';
import { InvalidOptionsError, LockLostError, LockService, type Lock } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { exposed } from '../support/exposed.js';
import { FencedResource } from '../support/fenced-resource.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServers } from '../support/redis.js';
import { Slack } from '../support/timing.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

async function lossOf(lock: Lock): Promise<LockLostError> {
  if (!lock.signal.aborted) await once(lock.signal, 'abort');
  return lock.signal.reason as LockLostError;
}

describe('LockService.forceRelease across application instances', () => {
  const bed = useAppWithRedis({});
  useUnhandledRejections();
  let b: INestApplication;
  let c: INestApplication;
  const a = () => bed.app.get(LockService);

  beforeAll(async () => {
    b = await createTestApp({ options: { connection: bed.server.url } });
    c = await createTestApp({ options: { connection: bed.server.url } });
  });
  bed.beforeStop(async () => {
    await b?.close();
    await c?.close();
  });

  it('evicts A for B: A is told at its next renewal, its writes are fenced off, and C gets a higher token', async () => {
    const ttlMs = 3_000;
    const resource = new FencedResource(bed.observer, 'report');
    const held = await a().acquire('report', { ttlMs });
    expect(await resource.write(held.fencingToken, 'by A')).toBe(true);

    const seen = await b.get(LockService).inspect('report');
    expect(seen.holders).toEqual([
      expect.objectContaining({ mode: 'write', fencingToken: held.fencingToken }),
    ]);

    const slack = await Slack.start().measureRoundTrip(bed.observer);
    const forcedAt = performance.now();
    const forced = await b.get(LockService).forceRelease('report');
    expect(forced).toEqual({ key: 'report', evicted: 1, fencingToken: expect.any(Number) });
    expect(forced.fencingToken).toBeGreaterThan(held.fencingToken);
    // The operator fences the resource off at once: A's late write is refused from here on.
    expect(await resource.write(forced.fencingToken, 'fenced off')).toBe(true);
    expect(await resource.write(held.fencingToken, 'late write by A')).toBe(false);

    const loss = await lossOf(held);
    slack.stop();
    expect(loss).toBeInstanceOf(LockLostError);
    expect(loss.reason).toBe('force-released');
    expect(loss.key).toBe('report');
    // Told by the next renewal: a third of the lease after the last one, at most.
    expect(performance.now() - forcedAt).toBeLessThanOrEqual(ttlMs / 3 + slack.ms);
    expect(await held.release()).toBe(false);

    const next = await c.get(LockService).acquire('report');
    expect(next.fencingToken).toBeGreaterThan(forced.fencingToken);
    expect(await resource.write(next.fencingToken, 'by C')).toBe(true);
    expect(await next.release()).toBe(true);
    expect(await resource.state()).toMatchObject({ value: 'by C', rejected: 1 });
  });

  it('leaves no secret token in what inspect() returns or in the loss A sees', async () => {
    const held = await a().acquire('secret', { ttlMs: 3_000 });
    const [token] = (await bed.observer.get('lock:{secret}'))!.split(' ');
    expect(token!.length).toBeGreaterThan(16);
    const seen = await b.get(LockService).inspect('secret');
    await b.get(LockService).forceRelease('secret');
    const loss = await lossOf(held);
    expect(exposed(seen)).not.toContain(token);
    expect(exposed(loss)).not.toContain(token);
  });

  it('forgets the evicted holders once none of them can still renew', async () => {
    const held = await a().acquire('forgotten', { ttlMs: 1_000 });
    await b.get(LockService).forceRelease('forgotten');
    const ttl = await bed.observer.pttl('lock:{forgotten}:x');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2 * 1_000 + 1_000);
    expect((await lossOf(held)).reason).toBe('force-released');
  });
});

describe('inspect and forceRelease with Redlock', () => {
  const bed = useRedisServers(3);
  let app: INestApplication;
  beforeAll(async () => {
    app = await createTestApp({
      options: {
        connection: bed.servers[0]!.url,
        locks: { redlock: { connections: bed.servers.map((s) => s.url) } },
      },
    });
  });
  bed.beforeStop(() => app?.close());

  it('refuses both, typed, saying what to do instead', async () => {
    const locks = app.get(LockService);
    for (const call of [() => locks.inspect('q'), () => locks.forceRelease('q')]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as InvalidOptionsError).option).toBe('locks.redlock');
      expect((error as Error).message).toMatch(/without `locks.redlock`/);
    }
  });

  it('hands a quorum lock over and adopts it', async () => {
    const locks = app.get(LockService);
    const lock = await locks.acquire('quorum-handle', { ttlMs: 10_000 });
    const adopted = await locks.adopt(JSON.parse(JSON.stringify(lock.toHandle())));
    expect(adopted.fencingToken).toBe(lock.fencingToken);
    expect(await adopted.release()).toBe(true);
    expect(await locks.isLocked('quorum-handle')).toBe(false);
  });
});
