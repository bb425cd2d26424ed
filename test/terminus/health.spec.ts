import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import request from 'supertest';
import { InvalidOptionsError, LockService, RedisTxModule } from '../../lib/index.js';
import { RedisTxHealthIndicator, RedisTxHealthModule } from '../../lib/terminus/index.js';
import { useRedisServer, useRedisServers } from '../support/redis.js';
import { Slack } from '../support/timing.js';
import { importWithout } from '../support/import-without.js';

const password = 'health-pw-9c1e';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisTxHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.redis.isHealthy('redis', { timeoutMs: 300 })]);
  }
}

async function healthApp(options: Parameters<typeof RedisTxModule.forRoot>[0]) {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxModule.forRoot(options), TerminusModule, RedisTxHealthModule],
    controllers: [HealthController],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

describe('RedisTxHealthIndicator', () => {
  const bed = useRedisServer();
  let admin: Redis;
  let app: INestApplication;
  beforeAll(async () => {
    admin = new Redis(bed.server.url);
    // Set after start: the test bed's readiness PING has no password.
    await admin.config('SET', 'requirepass', password);
    app = await healthApp({ connection: `redis://:${password}@127.0.0.1:${bed.server.port}` });
  });
  bed.beforeStop(async () => {
    await app?.close();
    admin?.disconnect();
  });

  it('answers 200 with each open connection up, and no credentials', async () => {
    const before = await request(app.getHttpServer()).get('/health').expect(200);
    // No lock was taken yet: the lock connection is not opened just to be checked.
    expect(before.body.details.redis).toEqual({
      status: 'up',
      shared: 'up',
      transactions: 'up',
    });

    await app.get(LockService).using('health', () => undefined);
    const after = await request(app.getHttpServer()).get('/health').expect(200);
    expect(after.body).toEqual({
      status: 'ok',
      info: { redis: { status: 'up', shared: 'up', transactions: 'up', locks: 'up' } },
      error: {},
      details: { redis: { status: 'up', shared: 'up', transactions: 'up', locks: 'up' } },
    });
    expect(JSON.stringify(after.body)).not.toContain(password);
  });

  it('answers 503 naming every connection that does not answer while the server is frozen', async () => {
    // What an answered health request costs here (HTTP, Nest, the checks' round trips).
    const measured = performance.now();
    await request(app.getHttpServer()).get('/health').expect(200);
    const healthyMs = performance.now() - measured;
    bed.server.pause();
    const slack = Slack.start();
    try {
      const started = performance.now();
      const response = await request(app.getHttpServer()).get('/health').expect(503);
      const answeredAfter = performance.now() - started;
      slack.stop();
      // Bounded by the 300 ms timeout plus what a healthy answer costs (give
      // or take how late this process ran), not by the frozen server.
      expect(answeredAfter).toBeLessThan(300 + healthyMs + slack.ms);
      expect(response.body.status).toBe('error');
      expect(response.body.error.redis).toEqual({
        status: 'down',
        shared: 'down',
        transactions: 'down',
        locks: 'down',
      });
      expect(JSON.stringify(response.body)).not.toContain(password);
    } finally {
      bed.server.resume();
    }
    await request(app.getHttpServer()).get('/health').expect(200);
  });

  it('refuses a bad timeoutMs with a typed error naming it', async () => {
    const indicator = app.get(RedisTxHealthIndicator);
    await expect(indicator.isHealthy('redis', { timeoutMs: 0 })).rejects.toThrow(
      InvalidOptionsError,
    );
    await expect(indicator.isHealthy('redis', { timeoutMs: 1.5 })).rejects.toMatchObject({
      option: 'timeoutMs',
    });
  });

  // Last: the server stays down.
  it('answers 503 when the server is gone', async () => {
    await bed.server.stop();
    const response = await request(app.getHttpServer()).get('/health').expect(503);
    expect(response.body.error.redis).toMatchObject({ status: 'down', shared: 'down' });
  });
});

describe('RedisTxHealthIndicator with Redlock', () => {
  // Three Redlock masters and the module's own Redis.
  const bed = useRedisServers(4);
  let app: INestApplication;
  beforeAll(async () => {
    const [a, b, c, main] = bed.servers;
    app = await healthApp({
      connection: main!.url,
      locks: { redlock: { connections: [a!.url, b!.url, c!.url] } },
    });
  });
  bed.beforeStop(() => app?.close());

  it('names each master by host:port, and the one that is down', async () => {
    const [a, b, c] = bed.servers.map((server) => `redlock 127.0.0.1:${server.port}`);
    const up = await request(app.getHttpServer()).get('/health').expect(200);
    expect(up.body.details.redis).toMatchObject({ [a!]: 'up', [b!]: 'up', [c!]: 'up' });

    await bed.servers[1]!.stop();
    const down = await request(app.getHttpServer()).get('/health').expect(503);
    expect(down.body.error.redis).toEqual({
      status: 'down',
      shared: 'up',
      transactions: 'up',
      [a!]: 'up',
      [b!]: 'down',
      [c!]: 'up',
    });
  });
});

describe('the built package entries', () => {
  it('nestjs-redis-tx loads without @nestjs/terminus; nestjs-redis-tx/terminus is where it is needed', () => {
    expect(importWithout('nestjs-redis-tx', '@nestjs/terminus')).toBe('loaded');
    expect(importWithout('nestjs-redis-tx/terminus', '@nestjs/terminus')).toBe(
      '@nestjs/terminus was loaded',
    );
  });

  it('nestjs-redis-tx/terminus exports the indicator and its module', () => {
    const names = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `console.log(Object.keys(await import('nestjs-redis-tx/terminus')).sort().join())`,
      ],
      { encoding: 'utf8' },
    ).trim();
    expect(names).toBe('RedisTxHealthIndicator,RedisTxHealthModule');
  });
});
