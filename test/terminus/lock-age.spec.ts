import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import request from 'supertest';
import { InvalidOptionsError, LockService, RedisTxModule } from '../../lib/index.js';
import { RedisTxHealthIndicator, RedisTxHealthModule } from '../../lib/terminus/index.js';
import { useRedisServer } from '../support/redis.js';
import { eventually, Slack } from '../support/timing.js';

/** The bound the checks below use: a lock held longer is overdue. */
let maxHeldMs = 60_000;

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisTxHealthIndicator,
  ) {}

  @Get('locks')
  @HealthCheck()
  scanned() {
    return this.health.check([() => this.redis.locksHeldWithin('locks', { maxHeldMs })]);
  }

  @Get('named')
  @HealthCheck()
  named() {
    return this.health.check([
      () => this.redis.locksHeldWithin('locks', { maxHeldMs, keys: ['report', 'other'] }),
    ]);
  }
}

describe('RedisTxHealthIndicator.locksHeldWithin', () => {
  const bed = useRedisServer();
  let app: INestApplication;
  let observer: Redis;
  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    const moduleRef = await Test.createTestingModule({
      imports: [
        RedisTxModule.forRoot({ connection: bed.server.url }),
        TerminusModule,
        RedisTxHealthModule,
      ],
      controllers: [HealthController],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });
  const locks = () => app.get(LockService);

  it('is up while no lock is held too long, and says how many it checked', async () => {
    maxHeldMs = 60_000;
    const lock = await locks().acquire('report');
    const reader = await locks().acquire('catalog', { mode: 'read' });
    const response = await request(app.getHttpServer()).get('/health/locks').expect(200);
    expect(response.body.details.locks).toEqual({
      status: 'up',
      checked: 2,
      complete: true,
      overdue: [],
    });
    await Promise.all([lock.release(), reader.release()]);
  });

  it('is down naming each lock held longer than maxHeldMs, scanned or named, with no token', async () => {
    const lock = await locks().acquire('report', { ttlMs: 2_000 });
    const [token] = (await observer.get('lock:{report}'))!.split(' ');
    maxHeldMs = 100;
    const slack = Slack.start();
    // Nothing announces that a lock has aged: ask until it has.
    await eventually(
      async () => (await locks().inspect('report')).holders[0]!.heldMs! > maxHeldMs,
      () => maxHeldMs + 1_000 + slack.ms,
      'the lock ages past maxHeldMs',
    );
    for (const path of ['/health/locks', '/health/named']) {
      const response = await request(app.getHttpServer()).get(path).expect(503);
      expect(response.body.error.locks).toMatchObject({
        status: 'down',
        overdue: [
          {
            key: 'report',
            mode: 'write',
            fencingToken: lock.fencingToken,
            heldMs: expect.any(Number),
          },
        ],
      });
      expect(JSON.stringify(response.body)).not.toContain(token);
    }
    slack.stop();
    await lock.release();
    await request(app.getHttpServer()).get('/health/locks').expect(200);
  });

  it('stops a scan after maxScannedKeys keys and says it was not complete', async () => {
    const held = await Promise.all(
      Array.from({ length: 30 }, (_, i) => locks().acquire(`many:${i}`)),
    );
    const result = await app
      .get(RedisTxHealthIndicator)
      .locksHeldWithin('locks', { maxHeldMs: 60_000, maxScannedKeys: 10 });
    expect(result.locks).toMatchObject({ status: 'up', complete: false });
    expect((result.locks as unknown as { checked: number }).checked).toBeLessThanOrEqual(10);
    await Promise.all(held.map((lock) => lock.release()));
  });

  it('finds locks behind an ioredis keyPrefix too', async () => {
    const client = new Redis(bed.server.url, { keyPrefix: 'tenant7:' });
    const moduleRef = await Test.createTestingModule({
      imports: [RedisTxModule.forRoot({ connection: client }), TerminusModule, RedisTxHealthModule],
    }).compile();
    const prefixed = moduleRef.createNestApplication({ logger: false });
    await prefixed.init();
    try {
      const lock = await prefixed.get(LockService).acquire('prefixed');
      expect(await observer.exists('tenant7:lock:{prefixed}')).toBe(1);
      const result = await prefixed
        .get(RedisTxHealthIndicator)
        .locksHeldWithin('locks', { maxHeldMs: 60_000 });
      expect(result.locks).toMatchObject({ status: 'up', checked: 1, complete: true });
      await lock.release();
    } finally {
      await prefixed.close();
      await client.quit();
    }
  });

  it('refuses a bad or unknown option, naming it', async () => {
    const indicator = app.get(RedisTxHealthIndicator);
    await expect(indicator.locksHeldWithin('locks', { maxHeldMs: -1 })).rejects.toMatchObject({
      option: 'maxHeldMs',
    });
    await expect(
      indicator.locksHeldWithin('locks', { maxHeldMs: 1, maxKeys: 3 } as never),
    ).rejects.toThrow(InvalidOptionsError);
  });
});
