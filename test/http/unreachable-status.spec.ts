import 'reflect-metadata';
import { Controller, Post } from '@nestjs/common';
import request from 'supertest';
import { RedisTx, Transactional } from '../../lib/index.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';

@Controller('counters')
class CountersController {
  constructor(private readonly redis: RedisTx) {}

  @Post('bump')
  @Transactional()
  bump(): void {
    this.redis.multi.incr('counter');
  }
}

describe('a transaction that could not be sent, over HTTP', () => {
  const redis = useRedisServer();

  it('answers 503, not 500, when Redis cannot be reached: the request was fine and nothing was applied', async () => {
    const app = await createTestApp({
      options: { connection: redis.server.url, transactions: { readyTimeoutMs: 200 } },
      controllers: [CountersController],
    });
    try {
      await redis.server.kill();
      await request(app.getHttpServer()).post('/counters/bump').expect(503);
    } finally {
      await app.close();
      await redis.server.restart();
    }
  });
});
