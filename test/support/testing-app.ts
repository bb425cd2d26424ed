import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { RedisTxTestingModule, type RedisTxTestingOptions } from '../../lib/testing/index.js';

/** A Nest application around RedisTxTestingModule (and the given providers), initialised but not listening. */
export async function createTestingApp(
  options: RedisTxTestingOptions,
  providers: NonNullable<Parameters<typeof Test.createTestingModule>[0]['providers']> = [],
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxTestingModule.forRoot(options)],
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}
