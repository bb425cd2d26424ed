import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { LockService } from '../../lib/index.js';
import { useRedisServer } from '../support/redis.js';
import { startSampleApp } from './in-process-app.js';

describe('the sample app’s lock admin routes', () => {
  const bed = useRedisServer();
  let app: INestApplication;
  let observer: Redis;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    app = await startSampleApp(bed.server.url, 'admin');
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });

  it('shows a held lock without its token, and force-releases it', async () => {
    const lock = await app.get(LockService).acquire('order:7', { ttlMs: 10_000 });
    const [token] = (await observer.get('lock:{order:7}'))!.split(' ');
    const { body } = await http().get('/admin/locks/order:7').expect(200);
    expect(body).toMatchObject({
      key: 'order:7',
      locked: true,
      holders: [{ mode: 'write', fencingToken: lock.fencingToken }],
      waiting: [],
      waitingCount: 0,
    });
    expect(JSON.stringify(body)).not.toContain(token);

    const forced = await http().post('/admin/locks/order:7/force-release').expect(200);
    expect(forced.body).toEqual({
      key: 'order:7',
      evicted: 1,
      fencingToken: expect.any(Number),
    });
    expect(forced.body.fencingToken).toBeGreaterThan(lock.fencingToken);
    await http().get('/admin/locks/order:7').expect(200, {
      key: 'order:7',
      locked: false,
      holders: [],
      waiting: [],
      waitingCount: 0,
    });
    expect(await lock.release()).toBe(false);
  });

  it('answers 400 for a key it would not take', async () => {
    const { body } = await http().get('/admin/locks/has%20space').expect(400);
    expect(body.message).toEqual([expect.stringMatching(/^key must be/)]);
  });
});
