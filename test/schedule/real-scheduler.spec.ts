import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { Injectable, type INestApplication, Inject } from '@nestjs/common';
import { Cron, SchedulerRegistry } from '@nestjs/schedule';
import { Redis } from 'ioredis';
import { CronTicks, InjectRedis, OncePerTick } from '../../lib/index.js';
import { ForkedWorker } from '../support/forked-worker.js';
import { useRedisServer } from '../support/redis.js';
import { Slack, eventually } from '../support/timing.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { INSTANCE, startTickApp } from './tick-apps.js';

const worker = fileURLToPath(new URL('./fixtures/tick-worker.mjs', `file://${__filename}`));

/** What each run appends to the `beats` list (the worker writes the same). */
interface Beat {
  instance: string;
  tick: number;
  token: number;
  missed: number;
}

@Injectable()
class EverySecond {
  constructor(
    @InjectRedis() private readonly redis: Redis,
    private readonly ticks: CronTicks,
    @Inject(INSTANCE) private readonly instance: string,
  ) {}

  @Cron('* * * * * *', { name: 'beat', waitForCompletion: true })
  @OncePerTick()
  async beat(): Promise<void> {
    const { scheduledAt, fencingToken, missedTicks } = this.ticks.current()!;
    const beat: Beat = {
      instance: this.instance,
      tick: scheduledAt,
      token: fencingToken,
      missed: missedTicks,
    };
    await this.redis.rpush('beats', JSON.stringify(beat));
  }
}

describe('@OncePerTick under the real scheduler, one instance in a process of its own', () => {
  const bed = useRedisServer();
  useUnhandledRejections();
  let observer: Redis;
  let apps: INestApplication[] = [];
  let late: ForkedWorker | undefined;
  beforeAll(() => {
    observer = new Redis(bed.server.url);
  });
  bed.beforeStop(() => observer.quit());
  afterEach(async () => {
    await Promise.all(apps.map((app) => app.close()));
    apps = [];
    await late?.kill();
  });

  async function beats(): Promise<Beat[]> {
    return (await observer.lrange('beats', 0, -1)).map((line) => JSON.parse(line) as Beat);
  }

  it('runs each fired tick once across three instances, one 1.5 s late, one 1.5 s early', async () => {
    // The late instance runs the built package in its own process (`npm run build` first).
    late = ForkedWorker.start(worker, [bed.server.url, 'late', '-1500']);
    late.child.stdin!.on('error', () => undefined);
    await late.line('ready');
    apps = [
      await startTickApp(bed.server.url, 'onTime', [EverySecond]),
      await startTickApp(bed.server.url, 'early', [EverySecond], {
        clock: () => Date.now() + 1_500,
      }),
    ];
    const slack = Slack.start();
    // The scheduler fires once a second: a bound of so many seconds, plus the lag seen.
    const within = (seconds: number) => () => seconds * 1_000 + slack.ms;
    try {
      // The late instance is up first; on a busy machine it may run a few
      // ticks alone before the other two have booted, so wait for theirs too.
      await eventually(
        async () => {
          const ran = await beats();
          return ran.length >= 3 && ran.some((beat) => beat.instance !== 'late');
        },
        within(20),
        'three ticks ran, one of them by an instance in this process',
      );
      // The instances on time and early go down; the late one carries on alone.
      for (const app of apps) await app.get(SchedulerRegistry).getCronJob('beat').stop();
      const before = (await beats()).length;
      await eventually(
        async () => (await beats()).slice(before).filter((b) => b.instance === 'late').length >= 2,
        within(20),
        'the late instance ran two ticks',
      );
      late.tell('stop');
      await late.line('closed');
    } finally {
      slack.stop();
    }

    const ran = await beats();
    const ticks = ran.map((beat) => beat.tick);
    // No tick ran twice, and they ran in order, on whole seconds.
    for (let i = 1; i < ran.length; i++) expect(ticks[i]).toBeGreaterThan(ticks[i - 1]!);
    for (const tick of ticks) expect(tick % 1_000).toBe(0);
    // Each gap is a tick nobody ran, and says so.
    for (let i = 1; i < ran.length; i++) {
      expect(ticks[i]! - ticks[i - 1]!).toBe((ran[i]!.missed + 1) * 1_000);
    }
    // The late instance ran ticks only before the others started and after
    // they went down: never while they were up (its ticks were claimed
    // already), and only ticks later than any that had run.
    const firstOthers = ran.findIndex((beat) => beat.instance !== 'late');
    const lastOthers = ran.findLastIndex((beat) => beat.instance !== 'late');
    expect(firstOthers).toBeGreaterThanOrEqual(0);
    expect(ran.slice(firstOthers, lastOthers + 1).map((beat) => beat.instance)).not.toContain(
      'late',
    );
    expect(ran.slice(lastOthers + 1).length).toBeGreaterThanOrEqual(2);
    expect(await apps[0]!.get(CronTicks).lastRun('beat')).toMatchObject({
      instance: 'late',
      scheduledAt: ticks.at(-1),
      outcome: 'ok',
    });
  });
});
