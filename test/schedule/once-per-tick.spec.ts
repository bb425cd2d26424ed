import 'reflect-metadata';
import { hostname } from 'node:os';
import { Inject, Injectable, type INestApplication } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { Redis } from 'ioredis';
import { CronTicks, InjectRedis, OncePerTick, type CronRun } from '../../lib/index.js';
import { expectNoHandlesBeyond, openHandles } from '../support/open-handles.js';
import { RedisConnections } from '../../lib/connection/redis-connections.js';
import { TickStore, type TickClaim } from '../../lib/schedule/tick-store.js';
import { useRedisServer } from '../support/redis.js';
import { Slack, eventually } from '../support/timing.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { fire, INSTANCE, startTickApp, VirtualClock } from './tick-apps.js';

/** A whole second, far from now: the ticks are computed from the injected clocks only. */
const T0 = Date.UTC(2030, 0, 1, 0, 0, 0);
const SECOND = 1_000;

/** What each run appends to the `runs` list. */
interface Run {
  instance: string;
  tick: number;
  token: number;
  missed: number;
}

/** Never fired by the scheduler (`disabled`): the test fires each tick itself, at a clock time it chose. */
@Injectable()
class EverySecond {
  /** Runs wait for this when set: a slow run. */
  static gate?: Promise<void>;

  constructor(
    @InjectRedis() private readonly redis: Redis,
    private readonly ticks: CronTicks,
    @Inject(INSTANCE) private readonly instance: string,
  ) {}

  @Cron('* * * * * *', { name: 'report', disabled: true, waitForCompletion: true })
  @OncePerTick()
  async report(): Promise<string> {
    const tick = this.ticks.current()!;
    const run: Run = {
      instance: this.instance,
      tick: tick.scheduledAt,
      token: tick.fencingToken,
      missed: tick.missedTicks,
    };
    await this.redis.rpush('runs', JSON.stringify(run));
    await EverySecond.gate;
    return 'ran';
  }
}

/** Its secret must never reach Redis. */
class PaymentGatewayError extends Error {
  override name = 'PaymentGatewayError';
}

@Injectable()
class Failing {
  static token?: number;
  constructor(private readonly ticks: CronTicks) {}

  @Cron('*/10 * * * * *', { name: 'charge', disabled: true })
  @OncePerTick()
  async charge(): Promise<void> {
    Failing.token = this.ticks.current()!.fencingToken;
    throw new PaymentGatewayError('card 4111111111111111 refused, api key sk_live_hunter2');
  }
}

@Injectable()
class CatchUp {
  constructor(
    @InjectRedis() private readonly redis: Redis,
    private readonly ticks: CronTicks,
    @Inject(INSTANCE) private readonly instance: string,
  ) {}

  @Cron('* * * * * *', { name: 'catch-up', disabled: true, waitForCompletion: true })
  @OncePerTick({ misfire: 'run-once' })
  async catchUp(): Promise<void> {
    const { scheduledAt, trigger } = this.ticks.current()!;
    await this.redis.rpush(
      'catch-up',
      JSON.stringify({ instance: this.instance, scheduledAt, trigger }),
    );
  }
}

/** The same job as CatchUp, with the default misfire policy. */
@Injectable()
class SkipMissed {
  constructor(@InjectRedis() private readonly redis: Redis) {}

  @Cron('* * * * * *', { name: 'catch-up', disabled: true, waitForCompletion: true })
  @OncePerTick()
  async catchUp(): Promise<void> {
    await this.redis.rpush('catch-up', 'skip-policy run');
  }
}

describe('@OncePerTick across instances whose clocks disagree', () => {
  const bed = useRedisServer();
  useUnhandledRejections();
  let observer: Redis;
  let apps: INestApplication[] = [];
  let baseline: Record<string, number>;
  beforeAll(() => {
    observer = new Redis(bed.server.url);
    baseline = openHandles();
  });
  bed.beforeStop(() => observer.quit());
  beforeEach(() => observer.flushall());
  afterEach(async () => {
    EverySecond.gate = undefined;
    await Promise.all(apps.map((app) => app.close()));
    apps = [];
    // Closed applications leave no socket or timer behind.
    await expectNoHandlesBeyond(baseline);
  });

  async function runs(list = 'runs'): Promise<Run[]> {
    return (await observer.lrange(list, 0, -1)).map((line) => JSON.parse(line) as Run);
  }

  it('runs each tick once, though one clock is 1.5 s late and one 1.5 s early, as instances come and go', async () => {
    const clock = new VirtualClock(T0 + 100);
    const offsets = { onTime: 0, late: -1_500, early: 1_500 };
    const names = Object.keys(offsets) as (keyof typeof offsets)[];
    const started = await Promise.all(
      names.map((name) =>
        startTickApp(bed.server.url, name, [EverySecond], {
          clock: clock.offsetBy(offsets[name]),
        }),
      ),
    );
    apps = started;
    const app = Object.fromEntries(names.map((name, i) => [name, started[i]!])) as Record<
      keyof typeof offsets,
      INestApplication
    >;
    // Which instances are up: the early one goes down after 5 s, the one on time after 9 s.
    const up = (name: keyof typeof offsets, at: number) =>
      name === 'early' ? at < T0 + 5 * SECOND : name === 'onTime' ? at < T0 + 9 * SECOND : true;

    // In steps of 100 ms of true time, each instance that is up fires when its own
    // clock crosses a whole second, as its scheduler would.
    const lastSecond = Object.fromEntries(
      names.map((name) => [name, Math.floor((clock.now + offsets[name]) / SECOND)]),
    );
    const fired: Record<string, number> = { onTime: 0, late: 0, early: 0 };
    for (let at = T0 + 100; at <= T0 + 14 * SECOND; at += 100) {
      clock.now = at;
      for (const name of names) {
        const second = Math.floor((at + offsets[name]) / SECOND);
        if (second === lastSecond[name]) continue;
        lastSecond[name] = second;
        if (!up(name, at)) continue;
        fired[name]!++;
        await fire(app[name], 'report');
      }
    }

    const ran = await runs();
    const ticks = ran.map((run) => run.tick);
    // Every instance fired many ticks, and ran only some.
    for (const name of names) expect(fired[name]).toBeGreaterThanOrEqual(4);
    expect(ran.length).toBeLessThan(fired.onTime! + fired.late! + fired.early!);
    // Each tick from the first to the last either ran exactly once, in
    // order, or was counted as missed by the run after it.
    for (let i = 1; i < ran.length; i++) {
      expect(ticks[i]! - ticks[i - 1]!).toBe((ran[i]!.missed + 1) * SECOND);
    }
    // Ticks were missed only where the early instance first fired: its
    // clock was past ticks that no instance had fired yet. Each other
    // change of hands is seamless.
    const firstEarly = ran.findIndex((run) => run.instance === 'early');
    expect(ran.filter((run, i) => run.missed > 0 && i !== firstEarly)).toEqual([]);
    // Each instance ran while it was the most advanced one up: the late one
    // first (it fired first, before anything was claimed), then only once
    // the others were down, and never a tick at or before one already run.
    const lastOfOthers = ran.findLastIndex((run) => run.instance !== 'late');
    expect(ran.map((run) => run.instance)).toEqual([
      'late',
      ...ran.slice(1, lastOfOthers + 1).map(() => expect.stringMatching(/^(early|onTime)$/)),
      ...ran.slice(lastOfOthers + 1).map(() => 'late'),
    ]);
    expect(lastOfOthers).toBeLessThan(ran.length - 1);
    expect(new Set(ran.map((run) => run.instance))).toEqual(new Set(names));
    ran.forEach((run, i) => {
      if (i > 0) expect(run.tick).toBeGreaterThan(Math.max(...ticks.slice(0, i)));
    });
    // A fencing token per run, growing.
    for (let i = 1; i < ran.length; i++) expect(ran[i]!.token).toBeGreaterThan(ran[i - 1]!.token);
    const last = (await app.late.get(CronTicks).lastRun('report'))!;
    expect(last).toMatchObject({ instance: 'late', scheduledAt: ticks.at(-1), outcome: 'ok' });
  });

  it('runs a tick fired twice on one instance, at once and one after the other, once', async () => {
    const clock = new VirtualClock(T0 + 200);
    apps = [await startTickApp(bed.server.url, 'a', [EverySecond], { clock: clock.offsetBy(0) })];
    const job = apps[0]!.get(EverySecond);
    expect(await Promise.all([job.report(), job.report()])).toContain(undefined);
    clock.now = T0 + 900;
    expect(await job.report()).toBeUndefined();
    await fire(apps[0]!, 'report');
    expect((await runs()).map((run) => run.tick)).toEqual([T0]);
    clock.now = T0 + SECOND;
    expect(await job.report()).toBe('ran');
    expect((await runs()).map((run) => run.tick)).toEqual([T0, T0 + SECOND]);
  });

  it('does not start a tick while the run of an earlier one holds the job, and counts the tick it missed', async () => {
    const clock = new VirtualClock(T0 + 100);
    apps = [
      await startTickApp(bed.server.url, 'a', [EverySecond], { clock: clock.offsetBy(0) }),
      await startTickApp(bed.server.url, 'b', [EverySecond], { clock: clock.offsetBy(0) }),
    ];
    let open!: () => void;
    EverySecond.gate = new Promise((resolve) => (open = resolve));
    const slow = apps[0]!.get(EverySecond).report();
    await eventually(
      async () => (await runs()).length === 1,
      () => 10_000,
      'the slow run started',
    );
    clock.now = T0 + 1_100;
    // Tick T0+1s finds the job's lock held by the run of T0: skipped, not claimed.
    expect(await apps[1]!.get(EverySecond).report()).toBeUndefined();
    open();
    expect(await slow).toBe('ran');
    clock.now = T0 + 2_100;
    expect(await apps[1]!.get(EverySecond).report()).toBe('ran');
    expect((await runs()).map((run) => [run.instance, run.tick])).toEqual([
      ['a', T0],
      ['b', T0 + 2 * SECOND],
    ]);
    expect(await apps[1]!.get(CronTicks).lastRun('report')).toMatchObject({
      scheduledAt: T0 + 2 * SECOND,
      missedTicks: 1,
    });
  });

  it('claims in Redis only a tick later than the last claimed, whatever the caller read before', async () => {
    const app = await startTickApp(bed.server.url, 'a', [EverySecond]);
    apps = [app];
    // The read before the lock is only a shortcut: two firings can both pass
    // it, and the script alone must then refuse the second.
    const store = new TickStore(app.get(RedisConnections), 'cron:', 5_000);
    const claim = (tick: number): TickClaim => ({
      tick,
      instance: 'a',
      fencingToken: 1,
      startedAt: tick,
      trigger: 'tick',
      missedTicks: 0,
    });
    expect(await store.claim('direct', claim(T0 + SECOND))).toEqual({ previous: undefined });
    expect(await store.claim('direct', claim(T0 + SECOND))).toBe(false);
    expect(await store.claim('direct', claim(T0))).toBe(false);
    expect(await store.claim('direct', claim(T0 + 3 * SECOND))).toEqual({
      previous: T0 + SECOND,
    });
    expect(await store.claim('direct', { ...claim(T0 + 5 * SECOND), trigger: 'catch-up' })).toEqual(
      { previous: T0 + 3 * SECOND },
    );
    // A catch-up with no history claims nothing.
    expect(await store.claim('fresh', { ...claim(T0), trigger: 'catch-up' })).toBe(false);
    expect(await store.lastClaimed('direct')).toBe(T0 + 5 * SECOND);
  });

  it('records the last run: who, fencing token, tick, start, end and outcome, with an error by name only', async () => {
    const clock = new VirtualClock(T0 + 10 * SECOND + 250);
    const app = await startTickApp(bed.server.url, 'worker-1', [Failing], {
      clock: clock.offsetBy(0),
    });
    apps = [app];
    const ticks = app.get(CronTicks);
    expect(await ticks.lastRun('charge')).toBeUndefined();
    const run = app.get(Failing).charge();
    await expect(run).rejects.toThrow(PaymentGatewayError);

    const record: CronRun = (await ticks.lastRun('charge'))!;
    expect(record).toEqual({
      job: 'charge',
      instance: 'worker-1',
      fencingToken: Failing.token,
      scheduledAt: T0 + 10 * SECOND,
      startedAt: T0 + 10 * SECOND + 250,
      endedAt: T0 + 10 * SECOND + 250,
      outcome: 'error',
      errorName: 'PaymentGatewayError',
      missedTicks: 0,
      trigger: 'tick',
    });
    // Nothing else is stored: no message, no lock token.
    const keys = await observer.keys('cron:*');
    expect(keys.sort()).toEqual(['cron:{charge}:run', 'cron:{charge}:tick']);
    const stored = JSON.stringify([
      await observer.hgetall('cron:{charge}:run'),
      await observer.hgetall('cron:{charge}:tick'),
    ]);
    expect(stored).not.toMatch(/4111|hunter2|refused/);
    expect(Object.keys(await observer.hgetall('cron:{charge}:tick')).sort()).toEqual([
      'fencingToken',
      'instance',
      'tick',
    ]);
    // The job's lock was released with the run.
    expect(await observer.keys('lock:{*')).toEqual([]);
  });

  it('names the instance <hostname>:<pid> by default', async () => {
    const clock = new VirtualClock(T0 + 100);
    const app = await startTickApp(bed.server.url, 'ignored', [EverySecond], {
      clock: clock.offsetBy(0),
      instanceId: undefined,
    });
    apps = [app];
    await fire(app, 'report');
    expect((await app.get(CronTicks).lastRun('report'))!.instance).toBe(
      `${hostname()}:${process.pid}`,
    );
  });

  it("misfire 'skip': after ticks nobody ran, runs the next tick as usual and counts the missed ones", async () => {
    const clock = new VirtualClock(T0 + 200);
    apps = [await startTickApp(bed.server.url, 'a', [EverySecond], { clock: clock.offsetBy(0) })];
    await fire(apps[0]!, 'report');
    // Every instance down for 5 ticks.
    clock.now = T0 + 5 * SECOND + 300;
    await fire(apps[0]!, 'report');
    expect((await runs()).map((run) => run.tick)).toEqual([T0, T0 + 5 * SECOND]);
    expect(await apps[0]!.get(CronTicks).lastRun('report')).toMatchObject({
      scheduledAt: T0 + 5 * SECOND,
      missedTicks: 4,
      trigger: 'tick',
    });
  });

  it("misfire 'run-once': a start after missed ticks runs the latest of them once, on one instance only", async () => {
    const clock = new VirtualClock(T0 + 200);
    const catchUps = async () =>
      (await observer.lrange('catch-up', 0, -1)).map(
        (line) => JSON.parse(line) as { instance: string; scheduledAt: number; trigger: string },
      );
    // No history: nothing was missed, so the start runs nothing (close waits for the catch-up).
    const first = await startTickApp(bed.server.url, 'first', [CatchUp], {
      clock: clock.offsetBy(0),
    });
    await first.close();
    expect(await catchUps()).toEqual([]);
    const second = await startTickApp(bed.server.url, 'second', [CatchUp], {
      clock: clock.offsetBy(0),
    });
    await fire(second, 'catch-up');
    await second.close();
    expect(await catchUps()).toEqual([{ instance: 'second', scheduledAt: T0, trigger: 'tick' }]);

    // Down for a while; two instances start together between ticks.
    clock.now = T0 + 5 * SECOND + 500;
    apps = await Promise.all(
      ['c', 'd'].map((name) =>
        startTickApp(bed.server.url, name, [CatchUp], { clock: clock.offsetBy(0) }),
      ),
    );
    const ticks = apps[0]!.get(CronTicks);
    const slack = Slack.start();
    await eventually(
      async () => {
        const run = await ticks.lastRun('catch-up');
        return run?.scheduledAt === T0 + 5 * SECOND && run.outcome === 'ok';
      },
      () => 10_000 + slack.ms,
      'the catch-up run ended',
    );
    slack.stop();
    // Let both starts' catch-ups settle, then fire the same tick on both.
    clock.now = T0 + 5 * SECOND + 700;
    for (const app of apps) await fire(app, 'catch-up');
    expect((await catchUps()).slice(1)).toEqual([
      {
        instance: expect.stringMatching(/^[cd]$/),
        scheduledAt: T0 + 5 * SECOND,
        trigger: 'catch-up',
      },
    ]);
    expect(await ticks.lastRun('catch-up')).toMatchObject({ missedTicks: 4, trigger: 'catch-up' });
    // The next tick runs as usual.
    clock.now = T0 + 6 * SECOND;
    for (const app of apps) await fire(app, 'catch-up');
    expect((await catchUps()).slice(2).map((run) => [run.scheduledAt, run.trigger])).toEqual([
      [T0 + 6 * SECOND, 'tick'],
    ]);
    await Promise.all(apps.map((app) => app.close()));

    // With 'skip', a start after missed ticks runs nothing.
    clock.now = T0 + 20 * SECOND + 500;
    apps = [await startTickApp(bed.server.url, 'e', [SkipMissed], { clock: clock.offsetBy(0) })];
    await apps[0]!.close();
    apps = [];
    expect(await observer.lrange('catch-up', 3, -1)).toEqual([]);
  });
});
