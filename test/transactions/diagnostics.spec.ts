import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { channelNames, RedisTx, Transactional } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

@Injectable()
class Events {
  attempts = 0;
  constructor(readonly redis: RedisTx) {}

  @Transactional({ watch: ['w'], retries: 1 })
  async conflictOnce(other: Redis) {
    if (++this.attempts === 1) await other.set('w', 'changed');
    this.redis.multi.set('out', 'x');
  }

  @Transactional()
  async fails() {
    throw new Error('nope');
  }
}

describe('diagnostics_channel events', () => {
  const bed = useAppWithRedis({ providers: [Events] });
  let other: Redis;
  const seen: [string, Record<string, unknown>][] = [];
  const listeners = Object.values(channelNames).map(
    (name) =>
      [name, (message: unknown) => seen.push([name, message as Record<string, unknown>])] as const,
  );

  beforeAll(() => {
    other = new Redis(bed.server.url);
    for (const [name, listener] of listeners) subscribe(name, listener);
  });
  bed.beforeStop(async () => {
    for (const [name, listener] of listeners) unsubscribe(name, listener);
    await other?.quit();
  });
  beforeEach(() => {
    seen.length = 0;
  });

  it('publishes start, conflict, retry, exec and commit, with durations', async () => {
    await bed.app.get(Events).conflictOnce(other);
    const names = seen.map(([name]) => name.split(':').pop());
    expect(names).toEqual(['start', 'exec', 'conflict', 'retry', 'start', 'exec', 'commit']);
    const commit = seen.at(-1)![1];
    expect(commit).toMatchObject({ label: 'Events.conflictOnce', attempts: 2, commands: 1 });
    expect(commit.durationMs).toEqual(expect.any(Number));
    expect(seen[2]![1].durationMs).toEqual(expect.any(Number));
  });

  it('publishes rollback with the error', async () => {
    await expect(bed.app.get(Events).fails()).rejects.toThrow('nope');
    expect(seen.map(([name]) => name.split(':').pop())).toEqual(['start', 'rollback']);
    expect((seen[1]![1].error as Error).message).toBe('nope');
  });
});
