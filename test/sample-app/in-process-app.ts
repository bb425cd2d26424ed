import type { INestApplication } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { AppModule } from '../../sample-app/src/app.module.js';

/**
 * The sample app in this process on the Redis at `url`, initialised and
 * silent (supertest listens). Its every-minute report is stopped: the specs
 * that use this helper look at what HTTP requests write, and a report that
 * happened to fire mid-test would write keys of its own. The schedule itself
 * is tested on the built app in built-app.spec.ts.
 */
export async function startSampleApp(url: string, instanceId: string): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRedis(url, { instanceId })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  await app.get(SchedulerRegistry).getCronJob('report').stop();
  return app;
}
