import 'reflect-metadata';
import { hasSubscribers } from 'node:diagnostics_channel';
import { Injectable } from '@nestjs/common';
import { channelNames, RedisTx, Transactional } from '../../lib/index.js';
import { tracing } from '../../lib/diagnostics/redis-tx.tracing.js';
import { attributeNames as at, metricNames, RedisTxOtelModule } from '../../lib/otel/index.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { named, useOtel } from './otel-bed.js';

@Injectable()
class Counter {
  constructor(readonly redis: RedisTx) {}

  @Transactional()
  async bump() {
    this.redis.multi.incr('bumps');
  }
}

function subscribed(): string[] {
  return [
    ...Object.entries(tracing).flatMap(([name, channel]) => (channel.hasSubscribers ? [name] : [])),
    ...Object.values(channelNames).filter((name) => hasSubscribers(name)),
  ];
}

describe('RedisTxOtelModule', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const otel = useOtel({ register: false });

  it('records while the application runs, and leaves no subscriber once it has closed', async () => {
    expect(subscribed()).toEqual([]);
    const app = await createTestApp({
      options: { connection: redis.server.url },
      providers: [Counter],
      imports: [
        RedisTxOtelModule.forRoot({
          tracerProvider: otel.tracerProvider,
          meterProvider: otel.meterProvider,
        }),
      ],
    });
    try {
      await app.get(Counter).bump();
    } finally {
      await app.close();
    }
    expect(subscribed()).toEqual([]);
    const [transaction] = named(otel.librarySpans(), 'transaction');
    expect(transaction!.attributes[at.name]).toBe('Counter.bump');
    await otel.collect();
    expect(otel.histogram(metricNames.transactionDuration)!.count).toBe(1);
  });
});
