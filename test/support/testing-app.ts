import type { INestApplication, LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { RedisTxTestingModule, type RedisTxTestingOptions } from '../../lib/testing/index.js';

/** A Nest application around RedisTxTestingModule (and the given providers), initialised but not listening; silent unless given a logger. */
export async function createTestingApp(
  options: RedisTxTestingOptions,
  providers: NonNullable<Parameters<typeof Test.createTestingModule>[0]['providers']> = [],
  logger: LoggerService | false = false,
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxTestingModule.forRoot(options)],
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return app;
}
