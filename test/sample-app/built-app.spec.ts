import { Redis } from 'ioredis';
import request from 'supertest';
import type { ReportRun } from '../../sample-app/src/report.service.js';
import { probePid } from '../support/pids.js';
import { useRedisServer } from '../support/redis.js';
import { useSampleBuild } from './sample-build.js';
import { SampleInstance, type ReportEvent } from './sample-instance.js';

// These run the sample as `npm run sample` does: built with tsc, one
// `node main.js` process per instance.
const EVERY_SECOND = '* * * * * *';
const build = useSampleBuild();

describe('two instances of the built sample app on one Redis', () => {
  const bed = useRedisServer();
  let instances: SampleInstance[] = [];
  let observer: Redis;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  /** Instance `i % 2`: requests alternate between the two. */
  const http = (i: number) => request(instances[i % 2]!.baseUrl);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    observer = new Redis(bed.server.url);
    // Keyspace events let a test see a payment start, instead of sleeping.
    await observer.config('SET', 'notify-keyspace-events', 'Khx');
    const started = await Promise.allSettled(
      ['one', 'two'].map((instanceId) =>
        SampleInstance.start(build.main, {
          redisUrl: bed.server.url,
          instanceId,
          reportCron: EVERY_SECOND,
        }),
      ),
    );
    instances = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }, 60_000);
  bed.beforeStop(async () => {
    // Normally stopped by the last test; this is for a run that failed earlier.
    await Promise.all(instances.map((instance) => instance.kill()));
    await observer?.quit();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
  });

  it('both answer GET /health with their Redis connections up', async () => {
    for (const instance of instances) {
      const { body } = await request(instance.baseUrl).get('/health').expect(200);
      expect(body).toMatchObject({
        status: 'ok',
        details: { redis: { status: 'up', shared: 'up', transactions: 'up' } },
      });
    }
  });

  it('runs the scheduled report on one instance per tick: the other one skips it', async () => {
    const from = new Date(Date.now() + 1_000).toISOString();
    const events = (): ReportEvent[] =>
      instances.flatMap((instance) => instance.reports).filter((event) => event.tick >= from);
    /** Ticks on which both instances' cron fired and said what it did. */
    const completeTicks = (): Map<string, ReportEvent[]> => {
      const byTick = new Map<string, ReportEvent[]>();
      for (const event of events())
        byTick.set(event.tick, [...(byTick.get(event.tick) ?? []), event]);
      return new Map(
        [...byTick].filter(([, said]) => new Set(said.map((event) => event.instance)).size === 2),
      );
    };
    /** Ticks either instance reported on: a busy machine can make one of them miss a few. */
    const ticksSeen = () => new Set(events().map((event) => event.tick)).size;
    // Until four ticks both reported on, or twelve ticks in all; the time
    // limit only catches instances that stopped reporting altogether.
    await SampleInstance.until(
      instances,
      () => completeTicks().size >= 4 || ticksSeen() >= 12,
      60_000,
      'through four report ticks',
    );
    expect(completeTicks().size).toBeGreaterThanOrEqual(4);

    const ticks = completeTicks();
    for (const [tick, said] of ticks) {
      const outcomes = said.map((event) => event.outcome).sort();
      expect({ tick, outcomes }).toEqual({ tick, outcomes: ['ran', 'skipped'] });
    }
    // What Redis recorded agrees: one run per tick, by the instance that said it ran.
    const runs = (await observer.lrange('reports:runs', 0, -1)).map(
      (json) => JSON.parse(json) as ReportRun,
    );
    for (const [tick, said] of ticks) {
      const ran = said.find((event) => event.outcome === 'ran')!;
      expect(runs.filter((run) => run.tick === tick)).toEqual([
        {
          tick,
          instance: ran.instance,
          fencingToken: ran.fencingToken,
          paidOrders: expect.any(Number),
        },
      ]);
    }
    expect(new Set(runs.map((run) => run.tick)).size).toBe(runs.length);
    expect(Number(await observer.get('reports:count'))).toBe(runs.length);
    const tokens = runs.map((run) => run.fencingToken);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('answers 409 to payments of an order, on either instance, while one of them runs; it is paid once', async () => {
    const subscriber = observer.duplicate();
    try {
      const channel = '__keyspace@0__:order:held';
      await subscriber.subscribe(channel);
      const started = new Promise<void>((resolve) =>
        subscriber.on('message', (from: string, event: string) => {
          if (from === channel && event === 'hset') resolve();
        }),
      );
      let firstDone = false;
      const first = http(0)
        .post('/orders/held/pay?providerMs=2500')
        .send({ amount: 30 })
        .then((res) => {
          firstDone = true;
          return res;
        });
      // The first payment writes the order's status under the lock, before its slow provider call.
      await Promise.race([
        started,
        first.then((res) => {
          throw new Error(`the first payment answered ${res.status} without starting`);
        }),
      ]);

      const others = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          http(i + 1)
            .post('/orders/held/pay')
            .send({ amount: 30 }),
        ),
      );
      for (const res of others) {
        expect({ status: res.status, code: res.body.code }).toEqual({
          status: 409,
          code: 'LOCK_BUSY',
        });
      }
      // They were refused while the first was still inside, not after it.
      expect(firstDone).toBe(false);

      const paid = await first;
      expect(paid.status).toBe(201);
      expect(paid.body).toEqual({
        orderId: 'held',
        amount: 30,
        fencingToken: expect.any(Number),
        instance: 'one',
      });
      for (const i of [0, 1]) {
        const again = await http(i).post('/orders/held/pay').send({ amount: 30 }).expect(409);
        expect(again.body.message).toBe('order held is already paid');
      }
      expect(await observer.hgetall('order:held')).toEqual({
        status: 'paid',
        amount: '30',
        fencingToken: String(paid.body.fencingToken),
        by: 'one',
        // Raised by every later attempt's fenced read of the order.
        fence: expect.stringMatching(/^\d+$/),
      });
    } finally {
      await subscriber.quit();
    }
  });

  it('lets exactly one of many simultaneous payments of each order through, across both instances', async () => {
    const orders = Array.from({ length: 10 }, (_, i) => `storm-${i}`);
    const attempts = orders.flatMap((order) =>
      Array.from({ length: 6 }, (_, i) => ({ order, via: i })),
    );
    const responses = await Promise.all(
      attempts.map(({ order, via }) => http(via).post(`/orders/${order}/pay`).send({ amount: 10 })),
    );
    for (const order of orders) {
      const statuses = responses
        .filter((_, i) => attempts[i]!.order === order)
        .map((res) => res.status)
        .sort();
      expect({ order, statuses }).toEqual({ order, statuses: [201, 409, 409, 409, 409, 409] });
      const paid = responses.find((res, i) => attempts[i]!.order === order && res.status === 201)!;
      const stored = await observer.hgetall(`order:${order}`);
      expect(stored).toEqual({
        status: 'paid',
        amount: '10',
        fencingToken: String(paid.body.fencingToken),
        by: paid.body.instance,
        fence: expect.stringMatching(/^\d+$/),
      });
    }
    expect(
      (await observer.smembers('orders:paid')).filter((id) => id.startsWith('storm-')).sort(),
    ).toEqual([...orders].sort());
  });

  it('conserves money over concurrent transfers through both instances, with no balance below zero', async () => {
    const accounts = ['t-a', 't-b', 't-c', 't-d'];
    const initial = Object.fromEntries(accounts.map((id) => [id, 100]));
    await Promise.all(
      accounts.map((id, i) => http(i).post('/accounts').send({ id, balance: 100 }).expect(201)),
    );
    // Every account pays and is paid by the others, in amounts that
    // overdraw some of them sometimes, all at once over both instances.
    const transfers = Array.from({ length: 80 }, (_, i) => ({
      from: accounts[i % 4]!,
      to: accounts[(i + 1 + (i % 3)) % 4]!,
      amount: 5 + ((i * 37) % 50),
    }));
    const responses = await Promise.all(
      transfers.map((transfer, i) => http(i).post('/transfers').send(transfer)),
    );
    const statuses = responses.map((res) => res.status);
    // 400: that balance was too low at the time; 409: conflicts outlasted the retries. Neither moved money.
    expect(statuses.filter((status) => ![201, 400, 409].includes(status))).toEqual([]);
    expect(statuses.filter((status, i) => status === 201 && i % 2 === 0).length).toBeGreaterThan(0);
    expect(statuses.filter((status, i) => status === 201 && i % 2 === 1).length).toBeGreaterThan(0);

    const expected = { ...initial };
    transfers.forEach(({ from, to, amount }, i) => {
      if (statuses[i] !== 201) return;
      expected[from]! -= amount;
      expected[to]! += amount;
    });
    const { body: balances } = await http(1).get('/accounts').expect(200);
    const ours = Object.fromEntries(accounts.map((id) => [id, balances[id]]));
    expect(ours).toEqual(expected);
    expect(Object.values(ours).reduce((sum: number, value) => sum + Number(value), 0)).toBe(400);
    for (const value of Object.values(ours)) expect(value).toBeGreaterThanOrEqual(0);

    const overdraft = await http(0)
      .post('/transfers')
      .send({ from: 't-a', to: 't-b', amount: Number(ours['t-a']) + 1 })
      .expect(400);
    expect(overdraft.body.message).toMatch(/account t-a has \d+, less than \d+/);
    await http(1).post('/transfers').send({ from: 't-a', to: 'nobody', amount: 1 }).expect(404);
    const { body: after } = await http(0).get('/accounts').expect(200);
    expect(Object.fromEntries(accounts.map((id) => [id, after[id]]))).toEqual(ours);
  });

  it('keeps follows and fans mirrored when follow and unfollow race through both instances', async () => {
    await http(0)
      .post('/users/ann/follows/bob')
      .expect(201, { follows: ['bob'], fans: [] });
    await http(1)
      .get('/users/bob')
      .expect(200, { follows: [], fans: ['ann'] });
    await http(1).delete('/users/ann/follows/bob').expect(200, { follows: [], fans: [] });
    await http(0).get('/users/bob').expect(200, { follows: [], fans: [] });

    // Every ordered pair of four users, each followed and unfollowed 16
    // times at once, the two kinds of request sent to different instances.
    const users = ['f0', 'f1', 'f2', 'f3'];
    const pairs = users.flatMap((user) =>
      users.filter((target) => target !== user).map((target) => ({ user, target })),
    );
    let racing = true;
    const race = Promise.all(
      pairs.flatMap(({ user, target }) =>
        Array.from({ length: 16 }, (_, k) => {
          const via = http(k + Math.floor(k / 2));
          const path = `/users/${user}/follows/${target}`;
          return k % 2 ? via.delete(path) : via.post(path);
        }),
      ),
    ).finally(() => (racing = false));

    // Meanwhile, read every pair from both sides in one snapshot, over and
    // over: a follow is never seen from one side only.
    const halfSeen: string[] = [];
    let snapshots = 0;
    while (racing && snapshots < 2_000) {
      const read = observer.multi();
      for (const { user, target } of pairs) {
        read.sismember(`u:${user}:follows`, target).sismember(`u:${target}:fans`, user);
      }
      const replies = (await read.exec())!.map(([error, value]) => {
        if (error) throw error;
        return value;
      });
      pairs.forEach(({ user, target }, i) => {
        if (replies[2 * i] !== replies[2 * i + 1]) halfSeen.push(`${user} -> ${target}`);
      });
      snapshots++;
    }
    for (const res of await race) expect([200, 201]).toContain(res.status);
    expect(halfSeen).toEqual([]);
    expect(snapshots).toBeGreaterThan(5);

    const seen = await Promise.all(users.map((user, i) => http(i).get(`/users/${user}`)));
    const graph = Object.fromEntries(users.map((user, i) => [user, seen[i]!.body]));
    for (const user of users) {
      for (const target of graph[user].follows) expect(graph[target].fans).toContain(user);
      for (const fan of graph[user].fans) expect(graph[fan].follows).toContain(user);
    }
    // The other instance reads the same.
    const again = await Promise.all(users.map((user, i) => http(i + 1).get(`/users/${user}`)));
    expect(Object.fromEntries(users.map((user, i) => [user, again[i]!.body]))).toEqual(graph);
  });

  it('stops on SIGTERM with exit code 0, its locks released and its last report run finished', async () => {
    expect(await Promise.all(instances.map((instance) => instance.stop()))).toEqual([0, 0]);

    // Nothing is kept past the stop: the report's job lock and every other
    // lock are released (only the fencing counter stays).
    expect((await observer.keys('lock:*')).filter((key) => key !== 'lock:fence')).toEqual([]);
    // The report ran under @OncePerTick, and its last run was allowed to
    // end: a run cut off by SIGTERM would still read 'running'.
    const lastRun = await observer.hgetall('cron:{report}:run');
    // The whole record, so that a failure shows the error's name too.
    expect(lastRun).toMatchObject({ outcome: 'ok' });
  });
});

describe('the built sample app without REDIS_URL', () => {
  it('starts a throwaway redis-server, works on it, and stops it again on SIGTERM', async () => {
    const app = await SampleInstance.start(build.main, { instanceId: 'alone' });
    const throwaway = app.throwaway;
    try {
      expect(throwaway?.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
      const health = await request(app.baseUrl).get('/health').expect(200);
      expect(health.body).toMatchObject({ status: 'ok', details: { redis: { status: 'up' } } });
      await request(app.baseUrl).post('/accounts').send({ id: 'x', balance: 5 }).expect(201);
      const client = new Redis(throwaway!.url);
      try {
        expect(await client.get('acct:x')).toBe('5');
      } finally {
        await client.quit();
      }

      expect(await app.stop()).toBe(0);
      expect(probePid(throwaway!.pid)).toMatchObject({ code: 'ESRCH' });
    } finally {
      await app.kill();
      // Only if the app died without stopping the server it started.
      if (throwaway && probePid(throwaway.pid) === undefined)
        process.kill(throwaway.pid, 'SIGKILL');
    }
  });
});
