import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import request from 'supertest';
import { AppModule } from '../../sample-app/src/app.module.js';
import { useRedisServer } from '../support/redis.js';

// The sample's answers to bad and unlucky requests, in process; what two
// instances do together is in built-app.spec.ts.
describe('the sample app over HTTP, one instance', () => {
  const bed = useRedisServer();
  let app: INestApplication;
  let observer: Redis;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule.forRedis(bed.server.url, { instanceId: 'solo' })],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });
  beforeEach(() => observer.flushall());

  it('answers GET /health with 200 while Redis answers', async () => {
    const { body } = await http().get('/health').expect(200);
    expect(body).toEqual({
      status: 'ok',
      info: { redis: expect.objectContaining({ status: 'up', shared: 'up', transactions: 'up' }) },
      error: {},
      details: { redis: expect.objectContaining({ status: 'up' }) },
    });
  });

  it('refuses malformed input with 400 naming the field, before touching Redis', async () => {
    const cases: [string, object, RegExp][] = [
      ['/accounts', { id: 'has space', balance: 1 }, /^id must be/],
      ['/accounts', { id: 'a', balance: -1 }, /^balance must be a whole number from 0/],
      ['/accounts', { id: 'a', balance: 1.5 }, /^balance must be/],
      ['/transfers', { from: 'a', to: 'b', amount: 0 }, /^amount must be a whole number from 1/],
      ['/transfers', { from: 'a', to: 'b', amount: 'ten' }, /^amount must be/],
      ['/transfers', { from: 'a', amount: 1 }, /^to must be/],
      ['/orders/o1/pay?providerMs=60000', { amount: 1 }, /^providerMs must be/],
      ['/orders/o1/pay', {}, /^amount must be/],
    ];
    for (const [path, body, message] of cases) {
      const res = await http().post(path).send(body);
      expect({ path, body, status: res.status, message: res.body.message }).toEqual({
        path,
        body,
        status: 400,
        message: expect.stringMatching(message),
      });
    }
    expect(await observer.dbsize()).toBe(0);
  });

  it('opens an account once, and refuses an overdraft, an unknown account and a transfer to itself', async () => {
    await http().post('/accounts').send({ id: 'a', balance: 50 }).expect(201, { opened: 'a' });
    await http().post('/accounts').send({ id: 'b', balance: 0 }).expect(201);
    const twice = await http().post('/accounts').send({ id: 'a', balance: 999 }).expect(409);
    expect(twice.body.message).toBe('account a already exists');

    await http().post('/transfers').send({ from: 'a', to: 'b', amount: 20 }).expect(201);
    const overdraft = await http()
      .post('/transfers')
      .send({ from: 'a', to: 'b', amount: 31 })
      .expect(400);
    expect(overdraft.body.message).toBe('account a has 30, less than 31');
    await http().post('/transfers').send({ from: 'a', to: 'nobody', amount: 1 }).expect(404);
    await http().post('/transfers').send({ from: 'nobody', to: 'a', amount: 1 }).expect(404);
    await http().post('/transfers').send({ from: 'a', to: 'a', amount: 1 }).expect(400);

    await http().get('/accounts').expect(200, { a: 30, b: 20 });
    expect(await observer.keys('acct:*')).toHaveLength(2);
  });

  it('records a payment with its fencing token, and refuses to pay an order twice', async () => {
    await http().get('/orders/o1').expect(404);
    const paid = await http().post('/orders/o1/pay').send({ amount: 5 }).expect(201);
    expect(paid.body).toEqual({
      orderId: 'o1',
      amount: 5,
      fencingToken: expect.any(Number),
      instance: 'solo',
    });
    await http()
      .get('/orders/o1')
      .expect(200, {
        status: 'paid',
        amount: '5',
        fencingToken: String(paid.body.fencingToken),
        by: 'solo',
      });
    const again = await http().post('/orders/o1/pay').send({ amount: 5 }).expect(409);
    expect(again.body.message).toBe('order o1 is already paid');
    expect(await observer.keys('lock:*')).toEqual(['lock:fence']);
  });

  it('follows and unfollows from both sides', async () => {
    await http()
      .post('/users/ann/follows/bob')
      .expect(201, { follows: ['bob'], fans: [] });
    await http()
      .post('/users/cat/follows/bob')
      .expect(201, { follows: ['bob'], fans: [] });
    await http()
      .get('/users/bob')
      .expect(200, { follows: [], fans: ['ann', 'cat'] });
    await http().delete('/users/ann/follows/bob').expect(200, { follows: [], fans: [] });
    await http()
      .get('/users/bob')
      .expect(200, { follows: [], fans: ['cat'] });
  });

  // Last: it freezes the server for a moment.
  it('answers GET /health with 503 naming the connections while Redis is frozen', async () => {
    bed.server.pause();
    try {
      const { body } = await http().get('/health').expect(503);
      expect(body.status).toBe('error');
      expect(body.error.redis).toMatchObject({ status: 'down', shared: 'down' });
    } finally {
      bed.server.resume();
    }
    await http().get('/health').expect(200);
  });
});
