import type { INestApplication, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { RedisTxModule, type RedisTxModuleOptions } from '../../lib/index.js';

export interface TestAppSpec {
  options: RedisTxModuleOptions;
  providers?: Type[];
  controllers?: Type[];
  imports?: NonNullable<Parameters<typeof Test.createTestingModule>[0]['imports']>;
}

/** A Nest application around RedisTxModule, initialised but not listening. */
export async function createTestApp(spec: TestAppSpec): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxModule.forRoot(spec.options), ...(spec.imports ?? [])],
    providers: spec.providers ?? [],
    controllers: spec.controllers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}
