import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { LockService } from '../../lib/index.js';
import { ForkedWorker } from '../support/forked-worker.js';
import { KeyEvents } from '../support/key-events.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

// The worker runs the built package (npm run build).
const script = fileURLToPath(new URL('./fixtures/lease-worker.mjs', `file://${__filename}`));

describe('a process frozen (SIGSTOP) past its lease, then resumed', () => {
  const bed = useAppWithRedis({ options: { locks: { pollMs: 60_000 } } });
  let events: KeyEvents;
  let worker: ForkedWorker | undefined;
  beforeAll(() => KeyEvents.enable(bed.observer));
  beforeEach(async () => {
    events = await new KeyEvents(bed.observer).start();
  });
  afterEach(async () => {
    if (worker) process.kill(worker.pid, 'SIGCONT');
    await worker?.kill();
    worker = undefined;
    await events.stop();
  });

  it('a waiter handed the lock while frozen is not given it on waking once the lease is gone', async () => {
    const locks = bed.app.get(LockService);
    const first = await locks.acquire('frozen-waiter');
    worker = ForkedWorker.start(script, ['wait', bed.server.url, 'frozen-waiter', '1000']);
    await worker.line('waiting');

    process.kill(worker.pid, 'SIGSTOP');
    // Handed to the frozen waiter, whose lease then runs out in Redis.
    await first.release();
    await events.next('expired', 'lock:{frozen-waiter}');
    const current = await locks.acquire('frozen-waiter', { waitMs: 0 });
    events.forget();

    process.kill(worker.pid, 'SIGCONT');
    const held = worker.line('held');
    const outcome = await Promise.race([
      held.then((line) => `handed a lock (${line})`),
      events.next('zadd', 'lock:{frozen-waiter}:q').then(() => 'lined up again'),
    ]);
    expect(outcome).toBe('lined up again');
    expect(current.signal.aborted).toBe(false);

    expect(await current.release()).toBe(true);
    const [fence, signalAborted] = (await held).split(' ');
    expect(Number(fence)).toBeGreaterThan(current.fencingToken);
    expect(signalAborted).toBe('false');
    worker.tell('release');
    expect(await worker.line('released')).toBe('true');
  });

  it('a holder resumed after its lease ended finds its signal aborted before anything else runs', async () => {
    worker = ForkedWorker.start(script, ['hold', bed.server.url, 'frozen-holder', '1000']);
    expect((await worker.line('held')).split(' ')[1]).toBe('false');

    process.kill(worker.pid, 'SIGSTOP');
    await events.next('expired', 'lock:{frozen-holder}');
    // Read first thing on waking, before any of the worker's timers can run.
    worker.tell('check');
    process.kill(worker.pid, 'SIGCONT');
    expect(await worker.line('signal')).toBe('true LockLostError');
    worker.tell('release');
    await worker.line('released');
  });
});
