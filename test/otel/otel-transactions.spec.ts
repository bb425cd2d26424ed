import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import { SpanStatusCode } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import {
  Locked,
  RedisTx,
  Transactional,
  TransactionConflictError,
  TransactionOutcomeUnknownError,
} from '../../lib/index.js';
import { attributeNames as at, metricNames } from '../../lib/otel/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { named, parentOf, useOtel } from './otel-bed.js';

@Injectable()
class Accounts {
  runs = 0;
  constructor(readonly redis: RedisTx) {}

  /** A rival writes the watched key during the first run only. */
  @Transactional({ watch: ['balance'], retries: 3 })
  async deposit(rival: Redis) {
    const balance = Number(await this.redis.client.get('balance'));
    if (++this.runs === 1) await rival.set('balance', '100');
    this.redis.multi.set('balance', String(balance + 1));
  }

  /** A rival writes the watched key on every run, and there is no retry. */
  @Transactional({ watch: ['balance'], retries: 0 })
  async contested(rival: Redis) {
    await this.redis.client.get('balance');
    await rival.incr('balance');
    this.redis.multi.incr('balance');
  }

  @Locked('ledger')
  @Transactional()
  async lockedWrite() {
    this.redis.multi.set('ledger:entry', '1');
  }

  @Transactional()
  async post() {
    this.redis.multi.incr('posted');
  }
}

describe('nestjs-redis-tx/otel: transactions', () => {
  useUnhandledRejections();
  const bed = useAppWithRedis({ providers: [Accounts] });
  const otel = useOtel();
  const accounts = () => bed.app.get(Accounts);
  let rival: Redis;

  beforeAll(() => {
    rival = new Redis(bed.server.url);
  });
  bed.beforeStop(() => rival?.quit());
  beforeEach(() => {
    accounts().runs = 0;
  });

  it('a conflicting watch transaction records its attempts and conflicts, and ioredis commands nest under its span', async () => {
    const { request } = await otel.inRequest(() => accounts().deposit(rival));
    const [transaction] = named(otel.librarySpans(), 'transaction');
    expect(transaction!.attributes).toMatchObject({
      [at.name]: 'Accounts.deposit',
      [at.transactionWatched]: true,
      [at.transactionOutcome]: 'committed',
      [at.transactionAttempts]: 2,
      [at.transactionConflicts]: 1,
    });
    expect(parentOf(transaction!)).toBe(request.spanContext().spanId);

    // Every command of both attempts, published by ioredis, is a child of the transaction.
    const transactionId = transaction!.spanContext().spanId;
    const children = otel
      .spans()
      .filter((span) => parentOf(span) === transactionId)
      .map((span) => span.name);
    for (const command of [
      'redis watch',
      'redis get',
      'redis multi',
      'redis exec',
      'redis batch MULTI',
    ]) {
      expect(children.filter((name) => name === command)).toHaveLength(2);
    }

    await otel.collect();
    const committed = { [at.name]: 'Accounts.deposit', [at.transactionOutcome]: 'committed' };
    const attempts = otel.histogram(metricNames.transactionAttempts, committed);
    expect(attempts).toMatchObject({ count: 1, sum: 2 });
    expect(otel.sum(metricNames.transactionConflicts, { [at.name]: 'Accounts.deposit' })).toBe(1);
    expect(otel.histogram(metricNames.transactionDuration, committed)!.count).toBe(1);
  });

  it('a transaction that runs out of retries ends as a conflict', async () => {
    await expect(accounts().contested(rival)).rejects.toBeInstanceOf(TransactionConflictError);
    const [transaction] = named(otel.librarySpans(), 'transaction');
    expect(transaction!.attributes).toMatchObject({
      [at.transactionOutcome]: 'conflict',
      [at.transactionAttempts]: 1,
      [at.transactionConflicts]: 1,
      [at.errorType]: 'TransactionConflictError',
    });
    expect(transaction!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'conflict' });
    await otel.collect();
    expect(otel.sum(metricNames.transactionConflicts, { [at.name]: 'Accounts.contested' })).toBe(1);
    expect(
      otel.histogram(metricNames.transactionDuration, { [at.transactionOutcome]: 'conflict' })!
        .count,
    ).toBe(1);
  });

  it('RedisTx.run takes its name from traceName', async () => {
    await accounts().redis.run(
      async () => {
        accounts().redis.multi.set('transfer:1', 'done');
      },
      { traceName: 'transfer' },
    );
    const [transaction] = named(otel.librarySpans(), 'transaction');
    expect(transaction!.attributes).toMatchObject({
      [at.name]: 'transfer',
      [at.transactionWatched]: false,
      [at.transactionOutcome]: 'committed',
      [at.transactionAttempts]: 1,
    });
    expect(JSON.stringify(transaction!.attributes)).not.toContain('transfer:1');
  });

  it('@Locked with @Transactional: the lock and the transaction are children of the request', async () => {
    const { request } = await otel.inRequest(() => accounts().lockedWrite());
    const spans = otel.librarySpans();
    const requestId = request.spanContext().spanId;
    for (const name of ['lock.acquire', 'lock.hold', 'transaction']) {
      expect(named(spans, name).map(parentOf)).toEqual([requestId]);
    }
    expect(named(spans, 'transaction')[0]!.attributes[at.name]).toBe('Accounts.lockedWrite');
  });
});

describe('nestjs-redis-tx/otel: a lost EXEC reply', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  const otel = useOtel();
  let app: INestApplication;

  beforeAll(async () => {
    app = await createTestApp({ options: { connection: net.proxy.url }, providers: [Accounts] });
  });
  redis.beforeStop(() => app?.close());

  it('counts the transaction whose outcome is unknown', async () => {
    const cut = net.proxy.faultOn('EXEC', 'cut-after-send');
    await expect(app.get(Accounts).post()).rejects.toBeInstanceOf(TransactionOutcomeUnknownError);
    await cut;
    const [transaction] = named(otel.librarySpans(), 'transaction');
    expect(transaction!.attributes).toMatchObject({
      [at.name]: 'Accounts.post',
      [at.transactionOutcome]: 'outcome-unknown',
      [at.errorType]: 'TransactionOutcomeUnknownError',
    });
    await otel.collect();
    expect(otel.sum(metricNames.transactionOutcomeUnknown, { [at.name]: 'Accounts.post' })).toBe(1);
  });
});
