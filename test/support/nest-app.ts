import type { INestApplication, LoggerService, Type } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { RedisTxModule, type RedisTxModuleOptions } from '../../lib/index.js';

/** The HTTP platforms the library answers on alike. */
export const platforms = ['express', 'fastify'] as const;
export type Platform = (typeof platforms)[number];

export interface TestAppSpec {
  options: RedisTxModuleOptions;
  providers?: Type[];
  controllers?: Type[];
  imports?: NonNullable<Parameters<typeof Test.createTestingModule>[0]['imports']>;
  /** Express unless told. */
  platform?: Platform;
  /** Silent unless given one. */
  logger?: LoggerService;
}

/** A Nest application around RedisTxModule, initialised but not listening (supertest listens). */
export async function createTestApp(spec: TestAppSpec): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxModule.forRoot(spec.options), ...(spec.imports ?? [])],
    providers: spec.providers ?? [],
    controllers: spec.controllers ?? [],
  }).compile();
  const options = { logger: spec.logger ?? (false as const) };
  if (spec.platform === 'fastify') {
    const app = moduleRef.createNestApplication(new FastifyAdapter(), options);
    await app.init();
    // Fastify takes requests on its server once its plugins are loaded.
    await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
    return app;
  }
  const app = moduleRef.createNestApplication(options);
  await app.init();
  return app;
}
