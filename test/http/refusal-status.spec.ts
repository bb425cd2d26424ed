import 'reflect-metadata';
import { once } from 'node:events';
import { Controller, Post, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { Locked, RedisTx, ShuttingDownError, Transactional } from '../../lib/index.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';

@Controller('jobs')
class JobsController {
  constructor(private readonly redis: RedisTx) {}

  @Post('run')
  @Locked('job', { waitMs: 0 })
  async run() {
    return { ran: true };
  }

  @Post('count')
  @Transactional()
  async count() {
    this.redis.multi.incr('count');
    return { counted: true };
  }

  @Post('draining')
  async draining() {
    throw new ShuttingDownError('RedisTxModule is shutting down.');
  }
}

/** Nest's default exception filter, no filter of the app's own: the status comes from the error. */
describe('HTTP status and Retry-After of refusals', () => {
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let app: INestApplication;
  let rival: Redis;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    rival = new Redis(redis.server.url);
  });
  redis.beforeStop(() => rival?.quit());
  beforeEach(async () => {
    await rival.flushall();
    app = await createTestApp({
      options: {
        connection: { host: net.proxy.host, port: net.proxy.port },
        transactions: { readyTimeoutMs: 300 },
        shutdownTimeoutMs: 2_500,
      },
      controllers: [JobsController],
    });
    await http().post('/jobs/run').expect(201);
  });
  afterEach(async () => {
    // Connections opened during a blackhole never finished their handshake: cut them too.
    net.proxy.pass();
    net.proxy.cutAll();
    await app.close();
  });

  it('answers 409 without Retry-After when the lock is held elsewhere', async () => {
    await rival.set('lock:{job}', 'someone-else', 'PX', 60_000);
    const res = await http().post('/jobs/run');
    expect(res.status).toBe(409);
    expect(res.headers['retry-after']).toBeUndefined();
    expect(res.body).toEqual({ statusCode: 409, message: expect.stringMatching(/"job" is held/) });
  });

  it('answers 503 when Redis is unreachable, not 409 (nobody holds the lock)', async () => {
    const closed = once(app.get(RedisConnections).locks.redis, 'close');
    net.proxy.blackhole();
    net.proxy.cutAll();
    await closed;
    const res = await http().post('/jobs/run');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeUndefined();
    expect(res.body).toEqual({
      statusCode: 503,
      message: expect.stringMatching(/Redis could not be reached/),
    });
  });

  it('answers 503 when the reply to EXEC is lost (TransactionOutcomeUnknownError)', async () => {
    const cut = net.proxy.faultOn('EXEC', 'cut-after-send');
    const res = await http().post('/jobs/count');
    await cut;
    expect(res.status).toBe(503);
    expect(res.body.message).toMatch(/may or may not have applied/);
  });

  it('answers 503 with Retry-After (the shutdown deadline, in seconds) to ShuttingDownError', async () => {
    const res = await http().post('/jobs/draining');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('3');
  });

  it('answers 503 with Retry-After to a lock refused because the app is shutting down', async () => {
    const server = app.getHttpServer() as Parameters<typeof request>[0];
    await app.close();
    // The routes outlive the listening socket: a request that still arrives meets a closing module.
    const res = await request(server).post('/jobs/run');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('3');
    expect(res.body.message).toMatch(/shutting down/);
  });
});
