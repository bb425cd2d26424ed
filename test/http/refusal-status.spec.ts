import 'reflect-metadata';
import { once } from 'node:events';
import { Controller, Param, Post, type INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import {
  channelNames,
  Locked,
  RedisTx,
  ShuttingDownError,
  Transactional,
  type RedisTxModuleOptions,
} from '../../lib/index.js';
import { CapturedLogger } from '../support/captured-logger.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { createTestApp, platforms } from '../support/nest-app.js';
import { nextEvent } from '../support/next-event.js';
import { useRedisServer } from '../support/redis.js';

// In the URL the app connects with, where Redis asks for one: it must reach neither a client nor a log line.
const password = 'not-for-clients-or-logs-7f3e';
let rival: Redis;
let auth = '';

@Controller('jobs')
class JobsController {
  constructor(private readonly redis: RedisTx) {}

  @Post('run/:id')
  @Locked((id: string) => `order:${id}`, { waitMs: 0 })
  async run(@Param('id') id: string) {
    return { ran: id };
  }

  @Post('wait/:id')
  @Locked((id: string) => `order:${id}`, { waitMs: 150 })
  async wait(@Param('id') id: string) {
    return { ran: id };
  }

  @Post('queue/:id')
  @Locked((id: string) => `order:${id}`, { waitMs: 30_000 })
  async queue(@Param('id') id: string) {
    return { ran: id };
  }

  @Post('bump')
  @Transactional({ watch: ['counter'], retries: 1 })
  async bump() {
    await this.redis.client.get('counter');
    await rival.incr('counter');
    this.redis.multi.incr('counter');
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

const body = (statusCode: number, code: string, message: string) => ({
  statusCode,
  code,
  message,
});
const busy = body(409, 'LOCK_BUSY', 'The resource is busy; try again.');
const unavailable = body(
  503,
  'SERVICE_UNAVAILABLE',
  'The service is temporarily unavailable; try again later.',
);
const shuttingDown = body(503, 'SHUTTING_DOWN', 'The service is shutting down; try again shortly.');

/** A stack trace, as a logger prints one: `    at fn (file:line:col)`. */
const stackFrame = /\n\s+at \S/;

/**
 * Nest's default exception filter, no filter of the app's own: the status,
 * body and logging come from the library alone, on either platform.
 */
describe.each(platforms)('HTTP answers to refusals, on %s', (platform) => {
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let app: INestApplication;
  let logger: CapturedLogger;
  /** Where the lines of the test itself start, after Nest's start-up lines. */
  let from: number;
  const http = () => request(app.getHttpServer() as Parameters<typeof request>[0]);
  const logged = () => logger.lines.slice(from);
  const errors = () => logged().filter((line) => /^\[(error|fatal)\]/.test(line));

  /** An expected refusal: no error, no stack; one debug line with the developer's detail. */
  function expectQuiet(detail: RegExp): void {
    expect(errors()).toEqual([]);
    expect(logged().filter((line) => stackFrame.test(line))).toEqual([]);
    expect(logged().filter((line) => line.startsWith('[debug]') && detail.test(line))).toHaveLength(
      1,
    );
  }

  function start(options: Omit<RedisTxModuleOptions, 'connection'> = {}) {
    return createTestApp({
      platform,
      logger,
      options: {
        connection: `redis://${auth}${net.proxy.host}:${net.proxy.port}`,
        transactions: { readyTimeoutMs: 300 },
        shutdownTimeoutMs: 2_500,
        ...options,
      },
      controllers: [JobsController],
    });
  }

  beforeAll(() => {
    rival = new Redis(redis.server.url);
  });
  redis.beforeStop(() => rival?.quit());
  beforeEach(async () => {
    await rival.flushall();
    logger = new CapturedLogger();
    app = await start();
    // Every connection the tests use is up before they start.
    await http().post('/jobs/run/warm-up').expect(201);
    await http().post('/jobs/count').expect(201);
    from = logger.lines.length;
  });
  afterEach(async () => {
    // Connections opened during a blackhole never finished their handshake: cut them too.
    net.proxy.pass();
    net.proxy.cutAll();
    await app.close();
  });

  it('answers 409 LOCK_BUSY, without the lock name or Retry-After, and logs no error', async () => {
    await rival.set('lock:{order:o1}', 'someone-else', 'PX', 60_000);
    const res = await http().post('/jobs/run/o1');
    expect(res.status).toBe(409);
    expect(res.headers['retry-after']).toBeUndefined();
    expect(res.body).toEqual(busy);
    expectQuiet(/JobsController\.run answered 409 LOCK_BUSY: Lock "order:o1" is held elsewhere/);
  });

  it('answers 409 LOCK_TIMEOUT when the lock stays held for all of waitMs', async () => {
    await rival.set('lock:{order:o2}', 'someone-else', 'PX', 60_000);
    const res = await http().post('/jobs/wait/o2');
    expect(res.status).toBe(409);
    expect(res.body).toEqual(
      body(409, 'LOCK_TIMEOUT', 'The resource stayed busy; try again later.'),
    );
    expectQuiet(/LOCK_TIMEOUT: Lock "order:o2" is held elsewhere and was not released within/);
  });

  it('answers 409 TRANSACTION_CONFLICT without naming the method, and logs no error', async () => {
    const res = await http().post('/jobs/bump');
    expect(res.status).toBe(409);
    expect(res.body).toEqual(
      body(409, 'TRANSACTION_CONFLICT', 'The data changed while the request ran; try again.'),
    );
    expectQuiet(/JobsController\.bump: a watched key changed on each of 2 attempt/);
    expect(await rival.get('counter')).toBe('2');
  });

  it('names the refused lock in the body only when the app opts in (http.exposeLockNames)', async () => {
    const exposing = await start({ http: { exposeLockNames: true } });
    try {
      await rival.set('lock:{order:o3}', 'someone-else', 'PX', 60_000);
      const res = await request(exposing.getHttpServer() as Parameters<typeof request>[0]).post(
        '/jobs/run/o3',
      );
      expect(res.status).toBe(409);
      expect(res.body).toEqual({ ...busy, locks: ['order:o3'] });
    } finally {
      await exposing.close();
    }
  });

  it('answers 503 SHUTTING_DOWN with Retry-After (the shutdown deadline, in seconds) to ShuttingDownError', async () => {
    const res = await http().post('/jobs/draining');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('3');
    expect(res.body).toEqual(shuttingDown);
    expectQuiet(/JobsController\.draining answered 503 SHUTTING_DOWN/);
  });

  it('answers 503 SHUTTING_DOWN with Retry-After to a lock wait that app.close() ends', async () => {
    await rival.set('lock:{order:o5}', 'someone-else', 'PX', 60_000);
    const waiting = nextEvent(channelNames.lockWait);
    const answer = http()
      .post('/jobs/queue/o5')
      .then((res) => res);
    await waiting;
    await app.close();
    const res = await answer;
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('3');
    expect(res.body).toEqual(shuttingDown);
    expectQuiet(/JobsController\.queue answered 503 SHUTTING_DOWN: RedisTxModule is shutting down/);
  });

  describe('with a password in the connection URL', () => {
    beforeAll(async () => {
      // Set after start: the test bed's readiness PING has no password.
      await rival.config('SET', 'requirepass', password);
      await rival.auth(password);
      auth = `:${password}@`;
    });
    afterAll(async () => {
      auth = '';
      await rival.config('SET', 'requirepass', '');
    });

    it('answers 503 SERVICE_UNAVAILABLE when Redis is unreachable, logged once as an error without the password', async () => {
      const closed = once(app.get(RedisConnections).locks.redis, 'close');
      net.proxy.blackhole();
      net.proxy.cutAll();
      await closed;
      const res = await http().post('/jobs/run/o4');
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBeUndefined();
      expect(res.body).toEqual(unavailable);
      expect(errors()).toHaveLength(1);
      expect(errors()[0]).toMatch(
        /^\[error\] JobsController\.run answered 503 SERVICE_UNAVAILABLE: Lock "order:o4" was not acquired: Redis could not be reached/,
      );
      expect(logger.text).not.toContain(password);
      // Nor a holder token (128 random bits, in hex).
      expect(logger.text).not.toMatch(/[0-9a-f]{32}/);
    });

    it('answers 503 OUTCOME_UNKNOWN when the reply to EXEC is lost, logged once as an error', async () => {
      const cut = net.proxy.faultOn('EXEC', 'cut-after-send');
      const res = await http().post('/jobs/count');
      await cut;
      expect(res.status).toBe(503);
      expect(res.body).toEqual(
        body(
          503,
          'OUTCOME_UNKNOWN',
          'Whether the request took effect is unknown; check before trying again.',
        ),
      );
      expect(errors()).toHaveLength(1);
      expect(errors()[0]).toMatch(
        /JobsController\.count answered 503 OUTCOME_UNKNOWN: .*may or may not/,
      );
      expect(logger.text).not.toContain(password);
    });
  });
});
