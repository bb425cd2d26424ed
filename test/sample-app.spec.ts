import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { AppModule } from '../sample-app/src/app.module.js';
import { useRedisServer } from './support/redis.js';

describe('the sample app over HTTP', () => {
  const bed = useRedisServer();
  let app: INestApplication;
  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forRedis(bed.server.url)],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });
  bed.beforeStop(() => app?.close());

  it('opens accounts, conserves money across concurrent transfers, and refuses an overdraft', async () => {
    const http = () => request(app.getHttpServer());
    await http().post('/accounts').send({ id: 'a', balance: 50 }).expect(201);
    await http().post('/accounts').send({ id: 'b', balance: 50 }).expect(201);
    const transfers = Array.from({ length: 20 }, (_, i) =>
      http()
        .post('/transfers')
        .send(i % 2 ? { from: 'a', to: 'b', amount: 3 } : { from: 'b', to: 'a', amount: 2 }),
    );
    for (const res of await Promise.all(transfers)) expect(res.status).toBe(201);
    const { body } = await http().get('/accounts').expect(200);
    expect(body.a + body.b).toBe(100);
    await http().post('/transfers').send({ from: 'a', to: 'b', amount: 1_000 }).expect(400);
  });

  it('pays an order under its lock and follows users in one transaction', async () => {
    const http = () => request(app.getHttpServer());
    const paid = await http().post('/orders/1/pay').send({ amount: 5 }).expect(201);
    expect(paid.body).toEqual({ orderId: '1', fencingToken: expect.any(Number) });
    const follow = await http().post('/users/ann/follows/bob').expect(201);
    expect(follow.body).toEqual({ follows: ['bob'], fans: [] });
    await http().get('/health').expect(200, { status: 'ok' });
  });
});
