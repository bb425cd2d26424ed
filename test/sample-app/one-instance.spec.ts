import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { useRedisServer } from '../support/redis.js';
import { startSampleApp } from './in-process-app.js';

// The sample's answers to bad and unlucky requests, in process; what two
// instances do together is in built-app.spec.ts.
describe('the sample app over HTTP, one instance', () => {
  const bed = useRedisServer();
  let app: INestApplication;
  let observer: Redis;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    app = await startSampleApp(bed.server.url, 'solo');
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

  // Every route that takes input, with what is wrong with it: no body,
  // wrong types, numbers out of range, fields it does not know, bad ids in
  // the path and bad query parameters. Each answers 400 with a message per
  // broken field, and nothing reaches Redis.
  const badInput: {
    method: 'post' | 'get' | 'delete';
    path: string;
    body?: unknown;
    messages: RegExp[];
  }[] = [
    // POST /accounts
    { method: 'post', path: '/accounts', messages: [/^id must be 1 to 64/, /^balance must be/] },
    {
      method: 'post',
      path: '/accounts',
      body: { id: 'has space', balance: 1 },
      messages: [/^id must be 1 to 64 letters/],
    },
    { method: 'post', path: '/accounts', body: { id: 7, balance: 1 }, messages: [/^id must be/] },
    {
      method: 'post',
      path: '/accounts',
      body: { id: 'x'.repeat(65), balance: 1 },
      messages: [/^id must be/],
    },
    {
      method: 'post',
      path: '/accounts',
      body: { id: 'a', balance: -1 },
      messages: [/^balance must be a whole number from 0 to 1000000000$/],
    },
    {
      method: 'post',
      path: '/accounts',
      body: { id: 'a', balance: 1.5 },
      messages: [/^balance must be/],
    },
    {
      method: 'post',
      path: '/accounts',
      body: { id: 'a', balance: '5' },
      messages: [/^balance must be/],
    },
    {
      method: 'post',
      path: '/accounts',
      body: { id: 'a', balance: 1e10 },
      messages: [/^balance must be/],
    },
    {
      method: 'post',
      path: '/accounts',
      body: { id: 'a', balance: 1, admin: true },
      messages: [/^property admin should not exist$/],
    },
    // POST /transfers
    {
      method: 'post',
      path: '/transfers',
      messages: [/^from must be/, /^to must be/, /^amount must be/],
    },
    {
      method: 'post',
      path: '/transfers',
      body: { from: 'a', to: 'b', amount: 0 },
      messages: [/^amount must be a whole number from 1 to/],
    },
    {
      method: 'post',
      path: '/transfers',
      body: { from: 'a', to: 'b', amount: -5 },
      messages: [/^amount must be a whole number from 1/],
    },
    {
      method: 'post',
      path: '/transfers',
      body: { from: 'a', to: 'b', amount: 'ten' },
      messages: [/^amount must be/],
    },
    {
      method: 'post',
      path: '/transfers',
      body: { from: 'a', amount: 1 },
      messages: [/^to must be/],
    },
    {
      method: 'post',
      path: '/transfers',
      body: { from: ['a'], to: 'b', amount: 1 },
      messages: [/^from must be/],
    },
    // POST /orders/:id/pay, first as the README's table shows it, with no body
    {
      method: 'post',
      path: '/orders/o1/pay?providerMs=2000',
      messages: [/^amount must be a whole number from 1 to/],
    },
    { method: 'post', path: '/orders/o1/pay', body: {}, messages: [/^amount must be/] },
    {
      method: 'post',
      path: '/orders/o1/pay',
      body: { amount: -1 },
      messages: [/^amount must be a whole number from 1/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay',
      body: { amount: '5' },
      messages: [/^amount must be/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay',
      body: { amount: null },
      messages: [/^amount must be/],
    },
    {
      method: 'post',
      path: '/orders/has%20space/pay',
      body: { amount: 1 },
      messages: [/^id must be 1 to 64/],
    },
    {
      method: 'post',
      path: `/orders/${'x'.repeat(65)}/pay`,
      body: { amount: 1 },
      messages: [/^id must be/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay?providerMs=60000',
      body: { amount: 1 },
      messages: [/^providerMs must be a whole number from 0 to 8000$/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay?providerMs=abc',
      body: { amount: 1 },
      messages: [/^providerMs must be/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay?providerMs=-1',
      body: { amount: 1 },
      messages: [/^providerMs must be/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay?providerMs=1.5',
      body: { amount: 1 },
      messages: [/^providerMs must be/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay?providerMs=',
      body: { amount: 1 },
      messages: [/^providerMs must be/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay?providerMs=1&providerMs=2',
      body: { amount: 1 },
      messages: [/^providerMs must be/],
    },
    {
      method: 'post',
      path: '/orders/o1/pay?amount=1',
      body: { amount: 1 },
      messages: [/^property amount should not exist$/],
    },
    // GET /orders/:id
    { method: 'get', path: '/orders/has%20space', messages: [/^id must be 1 to 64/] },
    { method: 'get', path: '/orders/a.b', messages: [/^id must be/] },
    // /users/:user/follows/:target and /users/:user
    { method: 'post', path: '/users/ann/follows/b%24b', messages: [/^target must be/] },
    { method: 'post', path: '/users/a%3Ab/follows/bob', messages: [/^user must be/] },
    { method: 'delete', path: '/users/ann/follows/b%20b', messages: [/^target must be/] },
    { method: 'get', path: `/users/${'u'.repeat(65)}`, messages: [/^user must be/] },
  ];

  it('refuses bad input on every route with 400 naming each field, before touching Redis', async () => {
    for (const { method, path, body, messages } of badInput) {
      const call = http()[method](path);
      const res = await (body === undefined ? call : call.send(body as object));
      expect({ method, path, body, status: res.status, message: res.body.message }).toEqual({
        method,
        path,
        body,
        status: 400,
        message: messages.map((message) => expect.stringMatching(message)),
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
    await http().get('/orders/o1').expect(200, {
      status: 'paid',
      by: 'solo',
      amount: 5,
      fencingToken: paid.body.fencingToken,
    });
    const again = await http().post('/orders/o1/pay').send({ amount: 5 }).expect(409);
    expect(again.body.message).toBe('order o1 is already paid');
    expect(await observer.keys('lock:*')).toEqual(['lock:fence']);
  });

  it('gives every field one JSON type, whichever route answers with it', async () => {
    const answers: [string, request.Test][] = [
      ['POST /accounts', http().post('/accounts').send({ id: 'a', balance: 50 })],
      ['POST /accounts', http().post('/accounts').send({ id: 'b', balance: 0 })],
      ['POST /transfers', http().post('/transfers').send({ from: 'a', to: 'b', amount: 20 })],
      ['GET /accounts', http().get('/accounts')],
      ['POST /orders/:id/pay', http().post('/orders/o1/pay?providerMs=1').send({ amount: 5 })],
      ['GET /orders/:id', http().get('/orders/o1')],
      ['POST /users/:user/follows/:target', http().post('/users/ann/follows/bob')],
      ['GET /users/:user', http().get('/users/bob')],
      ['DELETE /users/:user/follows/:target', http().delete('/users/ann/follows/bob')],
      ['GET /health', http().get('/health')],
    ];
    /** Field name (at any depth) -> the JSON types it came as, and where. */
    const seen = new Map<string, Set<string>>();
    const jsonType = (value: unknown) =>
      value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    const walk = (value: unknown, route: string): void => {
      if (typeof value !== 'object' || value === null) return;
      for (const [field, inner] of Object.entries(value)) {
        if (!Array.isArray(value)) {
          const types = seen.get(field) ?? new Set();
          types.add(`${jsonType(inner)} (${route})`);
          seen.set(field, types);
        }
        walk(inner, route);
      }
    };
    // One at a time and in this order: each builds on the one before.
    for (const [route, answer] of answers) {
      const { status, body } = await answer;
      expect({ route, ok: status === 200 || status === 201 }).toEqual({ route, ok: true });
      walk(body, route);
    }
    const mixed = [...seen].filter(
      ([, types]) => new Set([...types].map((type) => type.split(' ')[0])).size > 1,
    );
    expect(mixed.map(([field, types]) => `${field}: ${[...types].join(', ')}`)).toEqual([]);
    // The fields the payment and the order share are numbers in both.
    expect(seen.get('amount')).toEqual(
      new Set(['number (POST /orders/:id/pay)', 'number (GET /orders/:id)']),
    );
    expect(seen.get('fencingToken')).toEqual(
      new Set(['number (POST /orders/:id/pay)', 'number (GET /orders/:id)']),
    );
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
