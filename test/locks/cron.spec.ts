import 'reflect-metadata';
import { EventEmitter, once } from 'node:events';
import { Inject, Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Redis } from 'ioredis';
import { InjectRedis, Locked, LockService, RedisTxModule } from '../../lib/index.js';
import { useRedisServer } from '../support/redis.js';

const INSTANCE = Symbol('instance');

/** What each run leaves in Redis: who ran it, with which fencing token, in which second. */
interface Run {
  instance: string;
  token: number;
  second: number;
}

/** Every run of every app in this process, as it is recorded. */
const recorded = new EventEmitter();

async function record(redis: Redis, list: string, locks: LockService, instance: string) {
  const run: Run = {
    instance,
    token: locks.current()!.fencingToken,
    second: Math.floor(Date.now() / 1000),
  };
  await redis.rpush(list, JSON.stringify(run));
  recorded.emit(list, run);
}

@Injectable()
class EverySecond {
  constructor(
    @InjectRedis() private readonly redis: Redis,
    private readonly locks: LockService,
    @Inject(INSTANCE) private readonly instance: string,
  ) {}

  // waitForCompletion: stopping the job waits for a run under way.
  @Cron('* * * * * *', { name: 'sync', waitForCompletion: true })
  @Locked('jobs:sync', { waitMs: 0, onBusy: 'skip', lockAtLeastFor: 800 })
  async sync() {
    await record(this.redis, 'runs', this.locks, this.instance);
  }
}

/** The same job twice, never started by the scheduler: the test fires each tick itself, so the gap between instances is known. */
@Injectable()
class FiredByHand {
  constructor(
    @InjectRedis() private readonly redis: Redis,
    private readonly locks: LockService,
    @Inject(INSTANCE) private readonly instance: string,
  ) {}

  @Cron('* * * * * *', { name: 'plain', disabled: true, waitForCompletion: true })
  @Locked('jobs:plain', { waitMs: 0, onBusy: 'skip' })
  async plain() {
    await record(this.redis, 'plain', this.locks, this.instance);
  }

  @Cron('* * * * * *', { name: 'kept', disabled: true, waitForCompletion: true })
  @Locked('jobs:kept', { waitMs: 0, onBusy: 'skip', lockAtLeastFor: 800 })
  async kept() {
    await record(this.redis, 'kept', this.locks, this.instance);
  }
}

async function startInstance(
  url: string,
  instance: string,
  provider: typeof EverySecond | typeof FiredByHand,
) {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxModule.forRoot({ connection: url }), ScheduleModule.forRoot()],
    providers: [provider, { provide: INSTANCE, useValue: instance }],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

async function runsIn(redis: Redis, list: string): Promise<Run[]> {
  return (await redis.lrange(list, 0, -1)).map((line) => JSON.parse(line) as Run);
}

/** Resolves after `count` more runs are recorded on `list`; fails past `withinMs`. */
function runsRecorded(list: string, count: number, withinMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0;
    const onRun = () => {
      if (++seen < count) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`only ${seen} of ${count} runs within ${withinMs} ms`));
    }, withinMs);
    const done = () => {
      clearTimeout(timer);
      recorded.off(list, onRun);
    };
    recorded.on(list, onRun);
  });
}

/** Resolves when Redis expires `key` by itself (a keyspace event), so that no lock is left behind. */
async function expiry(observer: Redis, key: string, withinMs: number): Promise<void> {
  const subscriber = observer.duplicate();
  try {
    await subscriber.subscribe('__keyevent@0__:expired');
    if ((await observer.pttl(key)) === -2) return;
    const deadline = AbortSignal.timeout(withinMs);
    for (;;) {
      const [, expiredKey] = (await once(subscriber, 'message', { signal: deadline })) as [
        string,
        string,
      ];
      if (expiredKey === key) return;
    }
  } finally {
    await subscriber.quit();
  }
}

describe('@Cron + @Locked across instances', () => {
  const bed = useRedisServer();
  let observer: Redis;
  let apps: INestApplication[] = [];
  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    await observer.config('SET', 'notify-keyspace-events', 'Ex');
  });
  bed.beforeStop(() => observer.quit());
  beforeEach(() => observer.flushall());
  afterEach(async () => {
    await Promise.all(apps.map((app) => app.close()));
    apps = [];
  });

  it('runs each tick once across two instances with lockAtLeastFor, though both fire, one 30 ms late', async () => {
    apps = [
      await startInstance(bed.server.url, 'a', EverySecond),
      await startInstance(bed.server.url, 'b', EverySecond),
    ];
    const [onTime, late] = apps.map((app) => app.get(SchedulerRegistry).getCronJob('sync'));
    // The @Cron metadata survived @Locked: the scheduler found the job in each app.
    expect([onTime!.name, late!.name]).toEqual(['sync', 'sync']);

    // Instance b's clock runs 30 ms behind: its scheduled job fires that much after each second.
    await late!.stop();
    const fired = [firedSeconds(onTime!), new Set<number>()] as const;
    const skewed = fireLate(late!, 30, fired[1], 10);
    try {
      await runsRecorded('runs', 4, 15_000);
    } finally {
      await Promise.all([onTime!.stop(), skewed.stop()]);
    }

    const runs = await runsIn(observer, 'runs');
    const seconds = runs.map((run) => run.second);
    // One run per tick: no second has two.
    expect(new Set(seconds).size).toBe(seconds.length);
    // Ticks both instances fired, each of which ran once.
    const both = [...fired[0]].filter((second) => fired[1].has(second));
    expect(both.length).toBeGreaterThanOrEqual(3);
    for (const second of both) expect(seconds).toContain(second);
    for (const run of runs) expect(['a', 'b']).toContain(run.instance);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.token).toBeGreaterThan(runs[i - 1]!.token);
    }
    await expiry(observer, 'lock:{jobs:sync}', 2_000);
  });

  it('without lockAtLeastFor a job that takes no time runs twice when the instances fire a few ms apart', async () => {
    apps = [
      await startInstance(bed.server.url, 'a', FiredByHand),
      await startInstance(bed.server.url, 'b', FiredByHand),
    ];
    const registries = apps.map((app) => app.get(SchedulerRegistry));
    // Instance a's tick, then b's, once a's has ended: clocks a few ms apart.
    for (const job of ['plain', 'kept']) {
      for (const registry of registries) await registry.getCronJob(job).fireOnTick();
    }
    expect((await runsIn(observer, 'plain')).map((run) => run.instance)).toEqual(['a', 'b']);
    expect((await runsIn(observer, 'kept')).map((run) => run.instance)).toEqual(['a']);
    await expiry(observer, 'lock:{jobs:kept}', 2_000);
    expect(await observer.keys('lock:{*')).toEqual([]);
  });
});

type ScheduledJob = ReturnType<SchedulerRegistry['getCronJob']>;

/** The seconds in which the scheduler fired `job`, as it fires. */
function firedSeconds(job: ScheduledJob): Set<number> {
  const seconds = new Set<number>();
  job.addCallback(() => {
    seconds.add(Math.floor(job.lastDate()!.getTime() / 1000));
  });
  return seconds;
}

/**
 * Fires `job` (the one the scheduler made from @Cron) `lateMs` after each
 * second, at most `ticks` times, as a scheduler whose clock runs behind
 * would; records the seconds in `fired`.
 */
function fireLate(job: ScheduledJob, lateMs: number, fired: Set<number>, ticks: number) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const next = (left: number) => {
    if (stopped || left === 0) return;
    timer = setTimeout(
      () => {
        fired.add(Math.floor(Date.now() / 1000));
        running = job.fireOnTick();
        next(left - 1);
      },
      1_000 - (Date.now() % 1_000) + lateMs,
    );
  };
  next(ticks);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
