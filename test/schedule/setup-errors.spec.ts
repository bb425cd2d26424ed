import 'reflect-metadata';
import { Injectable, type Type } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import {
  CronTicks,
  CronTicksModule,
  InvalidCronJobError,
  InvalidOptionsError,
  OncePerTick,
  RedisTxModule,
  UnboundInstanceError,
  type InvalidCronJobReason,
  type OncePerTickOptions,
} from '../../lib/index.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { startTickApp } from './tick-apps.js';

@Injectable()
class NoCron {
  @OncePerTick({ job: 'orphan' })
  async run(): Promise<void> {}
}

@Injectable()
class NoName {
  @Cron('* * * * *')
  @OncePerTick()
  async run(): Promise<void> {}
}

@Injectable()
class BadExpression {
  @OncePerTick({ job: 'bad', cron: 'every tuesday' })
  async run(): Promise<void> {}
}

@Injectable()
class OnceOnly {
  @Cron(new Date(Date.UTC(2030, 0, 1)), { name: 'once', disabled: true })
  @OncePerTick()
  async run(): Promise<void> {}
}

@Injectable()
class NeverFires {
  @OncePerTick({ job: 'never', cron: '0 0 30 2 *' })
  async run(): Promise<void> {}
}

/** @OncePerTick above @Cron: the order of the two does not matter. */
@Injectable()
class Above {
  ran = 0;
  @OncePerTick()
  @Cron('* * * * * *', { name: 'above', disabled: true })
  async run(): Promise<void> {
    this.ran++;
  }
}

describe('@OncePerTick set up wrongly', () => {
  const bed = useRedisServer();
  useUnhandledRejections();

  it.each<[Type, InvalidCronJobReason, RegExp]>([
    [NoCron, 'no-cron', /NoCron\.run: the method has no @Cron\(\)/],
    [NoName, 'no-name', /NoName\.run: the job has no name/],
    [BadExpression, 'bad-expression', /"every tuesday" cannot be used/],
    [OnceOnly, 'bad-expression', /not a cron expression string/],
    [NeverFires, 'bad-expression', /"0 0 30 2 \*" cannot be used/],
  ])('refuses %p at bootstrap: %s', async (provider, reason, message) => {
    const error = (await startTickApp(bed.server.url, 'a', [provider]).catch(
      (e: unknown) => e,
    )) as InvalidCronJobError;
    expect(error).toBeInstanceOf(InvalidCronJobError);
    expect(error.reason).toBe(reason);
    expect(error.message).toMatch(message);
  });

  it.each<[OncePerTickOptions, string]>([
    [{ misfire: 'sometimes' as 'skip' }, 'misfire'],
    [{ job: '' }, 'job'],
    [{ lockTtlMs: 0 }, 'lockTtlMs'],
    [{ jobName: 'x' } as OncePerTickOptions, 'jobName'],
  ])('refuses options %p when the class is declared', (options, option) => {
    const declare = () => {
      class Job {
        async run(): Promise<void> {}
      }
      OncePerTick(options)(
        Job.prototype,
        'run',
        Object.getOwnPropertyDescriptor(Job.prototype, 'run')!,
      );
    };
    expect(declare).toThrow(InvalidOptionsError);
    try {
      declare();
    } catch (error) {
      expect((error as InvalidOptionsError).option).toBe(option);
    }
  });

  it('refuses bad module options and a bad job name to lastRun', async () => {
    expect(() => CronTicksModule.forRoot({ clock: 5 as unknown as () => number })).toThrow(
      InvalidOptionsError,
    );
    expect(() => CronTicksModule.forRoot({ instanceid: 'x' } as never)).toThrow(/instanceId/);
    const app = await startTickApp(bed.server.url, 'a', [Above]);
    try {
      await expect(app.get(CronTicks).lastRun('')).rejects.toThrow(InvalidOptionsError);
    } finally {
      await app.close();
    }
  });

  it('works written above @Cron too', async () => {
    const app = await startTickApp(bed.server.url, 'a', [Above]);
    try {
      await app.get(Above).run();
      expect(app.get(Above).ran).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('throws UnboundInstanceError, naming CronTicksModule, in an application without it', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [RedisTxModule.forRoot({ connection: bed.server.url })],
      providers: [Above],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      await expect(app.get(Above).run()).rejects.toThrow(UnboundInstanceError);
      await expect(app.get(Above).run()).rejects.toThrow(/import CronTicksModule\.forRoot\(\)/);
    } finally {
      await app.close();
    }
  });
});
