import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  CronTicks,
  CronTicksModule,
  OncePerTick,
  RedisTxError,
  RedisTxModule,
} from '../../lib/index.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { VirtualClock } from './tick-apps.js';

const T0 = Date.UTC(2030, 0, 1, 0, 0, 0);
const SECOND = 1_000;

@Injectable()
class Counted {
  runs = 0;

  @Cron('* * * * * *', { name: 'counted', disabled: true })
  @OncePerTick()
  async run(): Promise<string> {
    this.runs++;
    return 'ran';
  }
}

describe('@OncePerTick when Redis fails', () => {
  const bed = useRedisServer();
  const net = useFaultProxy(() => bed.server);
  useUnhandledRejections();
  let observer: Redis;
  let app: INestApplication | undefined;
  const clock = new VirtualClock(T0);
  beforeAll(() => {
    observer = new Redis(bed.server.url);
  });
  bed.beforeStop(() => observer.quit());
  beforeEach(async () => {
    await observer.flushall();
    clock.now = T0 + 100;
    const moduleRef = await Test.createTestingModule({
      imports: [
        // Short bounds, so that a silent Redis fails a firing soon.
        RedisTxModule.forRoot({
          connection: net.proxy.url,
          commandTimeoutMs: 300,
          transactions: { readyTimeoutMs: 300 },
        }),
        CronTicksModule.forRoot({ instanceId: 'a', clock: clock.offsetBy(0) }),
      ],
      providers: [Counted],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });
  afterEach(async () => {
    net.proxy.reset();
    await app?.close();
  });

  it('does not run a tick whose claim lost its reply, nor again once it is known claimed', async () => {
    const job = app!.get(Counted);
    // A first run, so that the lock's scripts are loaded: from now on the claim is the only EVAL.
    expect(await job.run()).toBe('ran');
    const cut = net.proxy.faultOn('EVAL', 'cut-after-send');
    clock.now = T0 + SECOND + 100;
    await expect(job.run()).rejects.toThrow(/after the tick's claim was sent and before its reply/);
    await cut;
    expect(job.runs).toBe(1);
    // Redis ran the claim: the tick is taken, though nobody runs it.
    expect(await observer.hget('cron:{counted}:tick', 'tick')).toBe(String(T0 + SECOND));
    expect(await job.run()).toBeUndefined();
    expect(job.runs).toBe(1);
    expect(await app!.get(CronTicks).lastRun('counted')).toMatchObject({
      scheduledAt: T0 + SECOND,
      outcome: 'running',
    });
  });

  it('throws RedisTxError without running when Redis does not answer', async () => {
    const job = app!.get(Counted);
    net.proxy.blackhole();
    const failure = job.run();
    await expect(failure).rejects.toThrow(RedisTxError);
    await expect(failure).rejects.toThrow(/did not run and claimed nothing/);
    expect(job.runs).toBe(0);
    net.proxy.pass();
    expect(await observer.exists('cron:{counted}:tick')).toBe(0);
  });
});
