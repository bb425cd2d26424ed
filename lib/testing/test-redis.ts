import { Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { TestRedisTarget } from './redis-tx-testing.options.js';
import { ThrowawayRedis } from './throwaway-redis.js';

/**
 * The Redis an application built with `RedisTxTestingModule` uses, for tests
 * that want to look at it themselves: `app.get(TestRedis).url`. A throwaway
 * server is stopped, by its pid, when the application closes, after the
 * module's own connections are closed.
 */
@Injectable()
export class TestRedis implements OnApplicationShutdown {
  private constructor(
    /** The URL to connect to (with the database in its path); undefined without Redis. */
    readonly url: string | undefined,
    /** The server started for this application, if one was. */
    readonly server: ThrowawayRedis | undefined,
  ) {}

  /**
   * Starts the throwaway server, or empties the given database, as `target` says.
   * @internal
   */
  static async prepare(target: TestRedisTarget): Promise<TestRedis> {
    switch (target.kind) {
      case 'none':
        return new TestRedis(undefined, undefined);
      case 'throwaway': {
        const server = await ThrowawayRedis.start(target.server);
        return new TestRedis(server.url, server);
      }
      case 'url':
        if (target.flushDb) await flush(target.url);
        return new TestRedis(target.url, undefined);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.stop();
  }
}

async function flush(url: string): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    await client.flushdb();
  } finally {
    client.disconnect();
  }
}
