import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Cron, ScheduleModule } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { CronTicks, CronTicksModule, OncePerTick } from '../../lib/index.js';
import { RedisTxTestingModule } from '../../lib/testing/index.js';

@Injectable()
class Nightly {
  ran = 0;
  @Cron('0 0 3 * * *', { name: 'nightly', disabled: true })
  @OncePerTick()
  async run(): Promise<void> {
    this.ran++;
  }
}

describe('@OncePerTick under RedisTxTestingModule', () => {
  it('claims a tick on the throwaway Redis', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ScheduleModule.forRoot(),
        RedisTxTestingModule.forRoot(),
        CronTicksModule.forRoot(),
      ],
      providers: [Nightly],
    }).compile();
    const app = moduleRef.createNestApplication();
    await app.init();
    try {
      const job = app.get(Nightly);
      await job.run();
      await job.run();
      expect(job.ran).toBe(1);
      expect((await app.get(CronTicks).lastRun('nightly'))?.outcome).toBe('ok');
    } finally {
      await app.close();
    }
  });
});
