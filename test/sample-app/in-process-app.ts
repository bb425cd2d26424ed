import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AppModule } from '../../sample-app/src/app.module.js';

/** The sample app in this process on the Redis at `url`, initialised and silent (supertest listens). */
export async function startSampleApp(url: string, instanceId: string): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRedis(url, { instanceId })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}
