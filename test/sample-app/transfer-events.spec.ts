import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import type { NestEventMessage } from '../../sample-app/src/nest-event.js';
import {
  TRANSFER_COMPLETED,
  type TransferCompleted,
} from '../../sample-app/src/transfer-events.js';
import { Inbox } from '../recipes/fixtures/inbox.js';
import { useRedisServer } from '../support/redis.js';
import { startSampleApp } from './in-process-app.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

// The sample publishes transfer.completed in the transfer's own MULTI, in
// the shape a Nest Redis microservice's @EventPattern handler reads.
describe('the sample app publishes transfer.completed on commit', () => {
  useUnhandledRejections();
  const bed = useRedisServer();
  let app: INestApplication;
  let subscriber: Redis;
  const received = new Inbox<NestEventMessage<TransferCompleted>>();
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    subscriber = new Redis(bed.server.url);
    subscriber.on('message', (_channel: string, message: string) =>
      received.add(JSON.parse(message) as NestEventMessage<TransferCompleted>),
    );
    await subscriber.subscribe(TRANSFER_COMPLETED);
    app = await startSampleApp(bed.server.url, 'events');
  });
  bed.beforeStop(async () => {
    await app?.close();
    await subscriber?.quit();
  });

  it('once for a transfer that commits, never for one refused', async () => {
    await http().post('/accounts').send({ id: 'ev-a', balance: 100 }).expect(201);
    await http().post('/accounts').send({ id: 'ev-b', balance: 0 }).expect(201);
    await http().post('/transfers').send({ from: 'ev-a', to: 'ev-b', amount: 500 }).expect(400);
    await http().post('/transfers').send({ from: 'ev-a', to: 'ev-b', amount: 30 }).expect(201);
    await http().post('/transfers').send({ from: 'ev-b', to: 'ev-a', amount: 1 }).expect(201);
    // In order on one subscriber: a refused transfer's event would come first, a repeat before the last.
    const last = (event: NestEventMessage<TransferCompleted>) => event.data.amount === 1;
    expect(await received.through(last)).toEqual([
      { pattern: TRANSFER_COMPLETED, data: { from: 'ev-a', to: 'ev-b', amount: 30 } },
      { pattern: TRANSFER_COMPLETED, data: { from: 'ev-b', to: 'ev-a', amount: 1 } },
    ]);
  });
});
