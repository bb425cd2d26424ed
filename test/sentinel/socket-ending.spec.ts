import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import { LockService, RedisTx, Transactional } from '../../lib/index.js';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { lockRedisKeys } from '../../lib/locks/lock-keys.js';
import { ask } from '../../tools/redis-server.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';

/**
 * Ends a connection's socket the way ioredis's Sentinel failover detector
 * does on +switch-master: ioredis keeps reporting 'ready' until the socket
 * has closed, and refuses any command sent meanwhile.
 */
function endSocketLikeAFailover(redis: Redis): void {
  (redis as unknown as { connector: { disconnect(): void } }).connector.disconnect();
  expect(redis.status).toBe('ready');
}

@Injectable()
class Counter {
  attempts = 0;
  constructor(readonly redis: RedisTx) {}

  @Transactional({ watch: (key: string) => [key], retries: 3 })
  async bump(key: string): Promise<void> {
    // The first attempt's connection is cut between WATCH and the method's read.
    if (this.attempts++ === 0) endSocketLikeAFailover(this.redis.client as Redis);
    const value = await this.redis.client.get(key);
    this.redis.multi.set(key, String(Number(value) + 1));
  }
}

describe('a connection whose socket a failover has just ended', () => {
  const bed = useRedisServer();
  let app: INestApplication;
  let observer: Redis;
  const connections = () => app.get(RedisConnections);

  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    app = await createTestApp({
      options: { connection: bed.server.url, transactions: { watchConnections: 1 } },
      providers: [Counter],
    });
  });
  bed.beforeStop(async () => {
    await app?.close();
    observer?.disconnect();
    // Every connection of the module is gone, the WATCH connection dropped
    // while its socket was ending included: only this question's is left.
    // The server notices a closed socket on its own time, with no event.
    let clients = 0;
    for (let i = 0; i < 100; i++) {
      clients = await connectedClients(bed.server.port);
      if (clients === 1) break;
      await sleep(20);
    }
    expect(clients).toBe(1);
  });

  it('sends a transaction once reconnected, rather than failing it with a raw ioredis error', async () => {
    await app.get(RedisTx).run(() => void app.get(RedisTx).multi.set('first', '1'));
    endSocketLikeAFailover(connections().transactions.redis as Redis);
    await app.get(RedisTx).run(() => void app.get(RedisTx).multi.set('after-end', '1'));
    expect(await observer.get('after-end')).toBe('1');
  });

  it('takes a lock once reconnected', async () => {
    await (await app.get(LockService).acquire('warm-up')).release();
    endSocketLikeAFailover(connections().locks.redis as Redis);
    const lock = await app.get(LockService).acquire('after-end', { waitMs: 0 });
    expect(await observer.exists(lockRedisKeys('lock:', 'after-end').writer)).toBe(1);
    await lock.release();
  });

  it('runs a WATCH transaction again when its read meets the ended socket: the WATCH went with it', async () => {
    const counter = app.get(Counter);
    await counter.bump('watched');
    expect(counter.attempts).toBe(2);
    expect(await observer.get('watched')).toBe('1');
  });
});

/** Clients connected to the server, counting the one that asks. */
async function connectedClients(port: number): Promise<number> {
  const list = await ask(port, 'CLIENT LIST');
  return typeof list === 'string' ? list.trim().split('\n').length : Number.NaN;
}
