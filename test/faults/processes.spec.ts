import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { LockService } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { FencedResource } from '../support/fenced-resource.js';
import { ForkedWorker } from '../support/forked-worker.js';
import {
  findOverlaps,
  parseIntervals,
  type SerializedInterval,
} from '../support/overlap-checker.js';

// The workers import the BUILT package: run `npm run build` (tsc -p tsconfig.build.json) first.
const script = fileURLToPath(new URL('./fixtures/fault-worker.mjs', `file://${__filename}`));

describe('locks and WATCH transactions across forked Node processes', () => {
  const bed = useAppWithRedis({ options: { locks: { pollMs: 100 } } });
  const workers: ForkedWorker[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  function fork(...args: string[]): ForkedWorker {
    const worker = ForkedWorker.start(script, args);
    workers.push(worker);
    return worker;
  }

  beforeAll(() => process.on('unhandledRejection', onUnhandled));
  afterAll(() => process.off('unhandledRejection', onUnhandled));
  afterEach(async () => {
    // A worker left running by a failed test must not outlive it.
    await Promise.all(workers.splice(0).map((worker) => worker.kill()));
    expect(unhandled).toEqual([]);
    // The fence counter is kept by design: tokens must keep increasing.
    const keys = await bed.observer.keys('lock:*');
    expect(keys.filter((key) => key !== 'lock:fence')).toEqual([]);
  });

  it('excludes 50 workers in 5 processes over 10 000 acquisitions: no two inside at once, every fenced write accepted', async () => {
    const processes = Array.from({ length: 5 }, () =>
      fork('mutex', bed.server.url, '10', '200', 'scale'),
    );
    await Promise.all(processes.map((worker) => worker.line('ready')));
    for (const worker of processes) worker.tell('go');
    // Each says how far it got every second: one that stops saying so is stuck, however busy the machine.
    const results = await Promise.all(
      processes.map((worker) =>
        worker.result<{ intervals: SerializedInterval[]; refused: number }>(),
      ),
    );
    expect(await Promise.all(processes.map((worker) => worker.exitCode()))).toEqual([
      0, 0, 0, 0, 0,
    ]);

    const intervals = parseIntervals(results.flatMap((result) => result.intervals));
    expect(intervals).toHaveLength(10_000);
    expect(new Set(intervals.map((interval) => interval.who)).size).toBe(50);
    expect(findOverlaps(intervals).slice(0, 3)).toEqual([]);
    expect(results.map((result) => result.refused)).toEqual([0, 0, 0, 0, 0]);
    const resource = await new FencedResource(bed.observer, 'scale').state();
    expect(resource).toMatchObject({ accepted: 10_000, rejected: 0 });
    // Only a backstop: the workers' progress lines above catch one that is stuck.
  }, 600_000);

  it('a holder frozen (SIGSTOP) past its lease loses the lock: its signal aborts with LockLostError and its late write is refused', async () => {
    const resource = new FencedResource(bed.observer, 'frozen');
    const holder = fork('stale', bed.server.url, '300', 'frozen');
    const staleToken = Number(await holder.line('held'));
    holder.child.kill('SIGSTOP');

    // The lease ends in Redis while the holder is frozen; this waiter gets the lock then.
    const lock = await bed.app.get(LockService).acquire('frozen', { waitMs: 10_000 });
    expect(lock.fencingToken).toBeGreaterThan(staleToken);
    expect(await resource.write(lock.fencingToken, 'current holder')).toBe(true);

    holder.tell('write'); // read as soon as it runs again
    holder.child.kill('SIGCONT');
    const outcome = await holder.result<{
      accepted: boolean;
      lost: { name: string; message: string } | null;
    }>();
    expect(outcome.accepted).toBe(false);
    expect(outcome.lost?.name).toBe('LockLostError');
    expect(outcome.lost?.message).toMatch(/Lock "frozen" was lost/);
    expect(await holder.exitCode()).toBe(0);

    expect(await resource.state()).toMatchObject({
      value: 'current holder',
      token: lock.fencingToken,
      accepted: 1,
      rejected: 1,
    });
    // The woken holder's renewal and shutdown release did not touch the new holder's key.
    expect(await bed.app.get(LockService).isLocked('frozen')).toBe(true);
    expect(await lock.release()).toBe(true);
  });

  it('N concurrent WATCH increments from 3 processes end at exactly N, with retries', async () => {
    const processes = Array.from({ length: 3 }, () =>
      fork('watch-incr', bed.server.url, '4', '25', 'watched:counter'),
    );
    await Promise.all(processes.map((worker) => worker.line('ready')));
    for (const worker of processes) worker.tell('go');
    const results = await Promise.all(
      processes.map((worker) => worker.result<{ retries: number }>()),
    );
    expect(await Promise.all(processes.map((worker) => worker.exitCode()))).toEqual([0, 0, 0]);
    expect(await bed.observer.get('watched:counter')).toBe(String(3 * 4 * 25));
    expect(results.reduce((sum, result) => sum + result.retries, 0)).toBeGreaterThan(0);
  });
});
