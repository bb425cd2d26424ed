import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { RedisServerOptions } from '../../tools/redis-server.js';
import type { RedisTxModuleOptions } from '../../lib/index.js';
import { createTestApp, type TestAppSpec } from './nest-app.js';
import { useRedisServer, type RedisBed } from './redis.js';

export interface AppBed extends RedisBed {
  readonly app: INestApplication;
  /** A separate connection for looking at the data, never used by the app. */
  readonly observer: Redis;
}

/**
 * The usual fixture of a describe block: its own redis-server, a Nest app
 * on it, and an observer connection; the data is flushed before each test
 * and everything is closed before the server stops.
 */
export function useAppWithRedis(
  spec: Omit<TestAppSpec, 'options'> & {
    options?: Omit<RedisTxModuleOptions, 'connection'>;
    server?: RedisServerOptions;
  },
): AppBed {
  const bed = useRedisServer(spec.server);
  let app: INestApplication | undefined;
  let observer: Redis | undefined;
  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    app = await createTestApp({
      ...spec,
      options: { ...spec.options, connection: bed.server.url },
    });
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });
  beforeEach(async () => {
    await observer!.flushall();
  });
  const started = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`useAppWithRedis: ${name} is created in beforeAll`);
    return value;
  };
  return {
    beforeStop: bed.beforeStop,
    get server() {
      return bed.server;
    },
    get app() {
      return started(app, 'app');
    },
    get observer() {
      return started(observer, 'observer');
    },
  };
}
