import 'reflect-metadata';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Redis } from 'ioredis';
import { InjectRedis, Locked, LockService, RedisTxModule } from '../../lib/index.js';
import { useRedisServer } from '../support/redis.js';
import { Slack } from '../support/timing.js';

const INSTANCE = Symbol('instance');
/** Ticks instance b fires at most in the two-instance test. */
const MAX_TICKS = 15;

/** What each run leaves in Redis: who ran it, with which fencing token, in which second. */
interface Run {
  instance: string;
  token: number;
  second: number;
}

async function record(redis: Redis, list: string, locks: LockService, instance: string) {
  const run: Run = {
    instance,
    token: locks.current()!.fencingToken,
    second: Math.floor(Date.now() / 1000),
  };
  await redis.rpush(list, JSON.stringify(run));
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
    const slack = await Slack.start().measureRoundTrip(observer);
    const fired = [firedSeconds(onTime!), new Set<number>()] as const;
    const skewed = fireLate(late!, 30, fired[1], MAX_TICKS);
    /** Seconds both instances fired in; a busy machine can make either miss one. */
    const firedByBoth = () => [...fired[0]].filter((second) => fired[1].has(second));
    try {
      // Until three ticks that both fired have run, however many ticks that takes.
      for (;;) {
        const seconds = (await runsIn(observer, 'runs')).map((run) => run.second);
        if (firedByBoth().filter((second) => seconds.includes(second)).length >= 3) break;
        if (skewed.done) throw new Error(`fewer than 3 ticks fired by both ran in ${MAX_TICKS}`);
        await sleep(50);
      }
    } finally {
      await Promise.all([onTime!.stop(), skewed.stop()]);
    }

    const runs = await runsIn(observer, 'runs');
    const seconds = runs.map((run) => run.second);
    // One run per tick: no second has two.
    expect(new Set(seconds).size).toBe(seconds.length);
    // Ticks both instances fired, each of which ran once.
    for (const second of firedByBoth()) expect(seconds).toContain(second);
    for (const run of runs) expect(['a', 'b']).toContain(run.instance);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.token).toBeGreaterThan(runs[i - 1]!.token);
    }
    // Kept for lockAtLeastFor after the last run, then Redis expires it (its expiry cycle runs every 100 ms).
    await expiry(observer, 'lock:{jobs:sync}', 800 + 100 + slack.ms);
    slack.stop();
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
    const slack = await Slack.start().measureRoundTrip(observer);
    await expiry(observer, 'lock:{jobs:kept}', 800 + 100 + slack.ms);
    slack.stop();
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
  let done = false;
  const next = (left: number) => {
    if (stopped) return;
    if (left === 0) {
      done = true;
      return;
    }
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
    /** Whether it has fired all its ticks. */
    get done() {
      return done;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
