import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { CronTicks, CronTicksModule, OncePerTick, RedisTxModule } from '../../lib/index.js';
import { useRedisCluster } from '../support/cluster.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { VirtualClock } from './tick-apps.js';

const T0 = Date.UTC(2030, 0, 1, 0, 0, 0);

@Injectable()
class Nightly {
  runs = 0;

  @Cron('0 0 3 * * *', { name: 'nightly:{eu}', disabled: true })
  @OncePerTick()
  async run(): Promise<void> {
    this.runs++;
  }
}

describe('@OncePerTick on Redis Cluster', () => {
  const bed = useRedisCluster();
  useUnhandledRejections();
  const clock = new VirtualClock(T0 + 3 * 3_600_000 + 5_000);
  let apps: INestApplication[] = [];
  let observer: Cluster;

  beforeAll(async () => {
    observer = new Cluster(bed.cluster.startupNodes, { lazyConnect: true });
    await observer.connect();
    for (const instance of ['a', 'b']) {
      const moduleRef = await Test.createTestingModule({
        imports: [
          RedisTxModule.forRoot({
            connection: { cluster: bed.cluster.startupNodes, options: { keyPrefix: 'app:' } },
          }),
          CronTicksModule.forRoot({ instanceId: instance, clock: clock.offsetBy(0) }),
        ],
        providers: [Nightly],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      apps.push(app);
    }
  });
  bed.beforeStop(async () => {
    await Promise.all(apps.map((app) => app.close()));
    apps = [];
    await observer.quit();
  });

  it("claims a tick once, with the job's keys in one slot, under the client's key prefix", async () => {
    const [a, b] = apps.map((app) => app.get(Nightly));
    await Promise.all([a!.run(), b!.run(), a!.run()]);
    expect(a!.runs + b!.runs).toBe(1);
    // The job's name is the hash tag (braces in it included), so both keys share a slot.
    const keys = ['app:cron:{nightly:{eu}}:tick', 'app:cron:{nightly:{eu}}:run'];
    expect(new Set(keys.map((key) => calculateSlot(key))).size).toBe(1);
    expect(await observer.hget(keys[0]!, 'tick')).toBe(String(T0 + 3 * 3_600_000));
    expect(await apps[1]!.get(CronTicks).lastRun('nightly:{eu}')).toMatchObject({
      scheduledAt: T0 + 3 * 3_600_000,
      outcome: 'ok',
    });
  });
});
