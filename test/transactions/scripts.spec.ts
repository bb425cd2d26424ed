import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import type { Result } from 'ioredis';
import { RedisTx, Transactional } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** Adds to a counter and returns the new value, but never beyond a cap. */
    incrCapped(key: string, by: number, cap: number): Result<number, Context>;
  }
}

const incrCapped = {
  numberOfKeys: 1,
  lua: `
    local next = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
    if next > tonumber(ARGV[2]) then next = tonumber(ARGV[2]) end
    redis.call('SET', KEYS[1], next)
    return next`,
};

@Injectable()
class Capped {
  constructor(readonly redis: RedisTx) {}

  @Transactional()
  async twice() {
    this.redis.multi.incrCapped('capped', 4, 6).incrCapped('capped', 4, 6);
  }
}

describe('Lua scripts registered in the module options', () => {
  const bed = useAppWithRedis({ options: { scripts: { incrCapped } }, providers: [Capped] });

  it('are callable on RedisTx.client', async () => {
    expect(await bed.app.get(RedisTx).client.incrCapped('c', 5, 7)).toBe(5);
    expect(await bed.app.get(RedisTx).client.incrCapped('c', 5, 7)).toBe(7);
  });

  it('are callable on RedisTx.multi and run inside EXEC', async () => {
    const result = await bed.app.get(RedisTx).run(() => {
      bed.app.get(RedisTx).multi.incrCapped('m', 3, 5).incrCapped('m', 3, 5);
    });
    expect(result.replies).toEqual([3, 5]);
    await bed.app.get(Capped).twice();
    expect(await bed.observer.get('capped')).toBe('6');
  });

  it('survive a SCRIPT FLUSH (reloaded on NOSCRIPT)', async () => {
    await bed.app.get(Capped).twice();
    await bed.observer.script('FLUSH');
    await bed.app.get(Capped).twice();
    expect(await bed.app.get(RedisTx).client.incrCapped('c', 1, 9)).toBe(1);
    await bed.observer.script('FLUSH');
    expect(await bed.app.get(RedisTx).client.incrCapped('c', 1, 9)).toBe(2);
    expect(await bed.observer.get('capped')).toBe('6');
  });
});
