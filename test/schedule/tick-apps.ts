import type { INestApplication, Type } from '@nestjs/common';
import { ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { CronTicksModule, RedisTxModule, type CronTicksModuleOptions } from '../../lib/index.js';

/** DI token of the name a test gives each application instance. */
export const INSTANCE = 'test:instance';

/**
 * A clock the test moves by hand: "true" time, which each instance reads
 * with its own offset, as machines whose clocks disagree would.
 */
export class VirtualClock {
  constructor(public now: number) {}

  /** This clock as seen by an instance whose clock is `offsetMs` ahead (negative: behind). */
  offsetBy(offsetMs: number): () => number {
    return () => this.now + offsetMs;
  }
}

/** An application instance as in production: RedisTxModule, ScheduleModule and CronTicksModule on one Redis. */
export async function startTickApp(
  url: string,
  instance: string,
  providers: Type[],
  ticks: CronTicksModuleOptions = {},
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      RedisTxModule.forRoot({ connection: url }),
      ScheduleModule.forRoot(),
      CronTicksModule.forRoot({ instanceId: instance, ...ticks }),
    ],
    providers: [...providers, { provide: INSTANCE, useValue: instance }],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  try {
    await app.init();
  } catch (error) {
    // What did start (the Redis connections) is closed before the error surfaces.
    await app.close();
    throw error;
  }
  return app;
}

/** Fires the job the scheduler made from `@Cron(…, { name })`, as its timer would, and waits for the run. */
export async function fire(app: INestApplication, job: string): Promise<void> {
  await app.get(SchedulerRegistry).getCronJob(job).fireOnTick();
}
