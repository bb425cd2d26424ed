import { channelNames, LockLostError, LockService, type Lock } from '../../lib/index.js';
import type { LockDefaults } from '../../lib/locks/lock.options.js';
import { driftMs } from '../../lib/locks/lease-validity.js';
import type { LockStore, PartRequest } from '../../lib/locks/lock-store.js';
import { WaitCancel } from '../../lib/locks/wait-cancel.js';
import { expireLock } from '../../lib/testing/index.js';
import type { LockAcquireEvent } from '../../lib/diagnostics/redis-tx.channels.js';
import { nextEvent } from '../support/next-event.js';
import { defineLockAdminConformance } from './lock-admin-conformance.js';

/** One application's locks, and the store under them. */
export interface LockHarness {
  locks: LockService;
  store: LockStore;
  close(): Promise<void>;
}

/** Makes an application whose locks live in the store under test, with these lock defaults. */
export type HarnessFactory = (defaults: LockDefaults) => Promise<LockHarness>;

/**
 * A backstop for waits that end by an event (a release, a lease's end): it
 * is never what ends them in a passing run.
 */
const WAIT_BACKSTOP_MS = 30_000;
/**
 * Polling this rare means no poll falls within a test: a waiter that gets
 * the lock was woken by the release.
 */
const NO_POLLING_MS = 600_000;

/** A request for one name straight from the store, as a holder that then stops (crashes) would make it. */
function crashedHolderRequest(name: string, ttlMs: number): PartRequest {
  return {
    mode: 'w',
    ttlMs,
    waitMs: 0,
    permits: 0,
    replicaAcks: 0,
    replicaAckTimeoutMs: 0,
    deadline: performance.now(),
    allNames: [name],
    cancelForWait: () => new WaitCancel(),
    closing: () => false,
  };
}

/** Starts `acquire` and resolves once the caller waits in line. */
async function queued(start: () => Promise<Lock>): Promise<{ lock: Promise<Lock> }> {
  const waiting = nextEvent(channelNames.lockWait);
  const lock = start();
  // A test that fails before awaiting it must not leave a rejection unhandled at close.
  lock.catch(() => undefined);
  await waiting;
  return { lock };
}

/**
 * The semantics every lock store must share, defined once and run against
 * each store: what LockService users see must not depend on where the locks live.
 */
export function defineLockConformance(makeHarness: HarnessFactory): void {
  let h: LockHarness;
  beforeAll(async () => {
    h = await makeHarness({ ttlMs: 10_000, pollMs: NO_POLLING_MS });
  });
  afterAll(() => h?.close());

  it('excludes: a held lock is busy for everyone else until released', async () => {
    const held = await h.locks.acquire('conf:exclusive');
    expect(await h.locks.tryAcquire('conf:exclusive')).toBeNull();
    expect(await h.locks.isLocked('conf:exclusive')).toBe(true);
    expect(await held.release()).toBe(true);
    expect(await h.locks.isLocked('conf:exclusive')).toBe(false);
    const next = await h.locks.tryAcquire('conf:exclusive');
    expect(next).not.toBeNull();
    await next!.release();
  });

  it('gives every acquisition of a name a higher fencing token, in every mode', async () => {
    const tokens: number[] = [];
    for (const options of [{}, { mode: 'read' as const }, { permits: 2 }, {}, {}]) {
      const lock = await h.locks.acquire('conf:fence', options);
      tokens.push(lock.fencingToken);
      await lock.release();
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
  });

  it('serves waiters in the order they arrived', async () => {
    const holder = await h.locks.acquire('conf:fair');
    const served: number[] = [];
    const waiters: Promise<void>[] = [];
    for (let i = 0; i < 4; i++) {
      const { lock } = await queued(() =>
        h.locks.acquire('conf:fair', { waitMs: WAIT_BACKSTOP_MS }),
      );
      waiters.push(
        lock.then(async (held) => {
          served.push(i);
          await held.release();
        }),
      );
    }
    await holder.release();
    await Promise.all(waiters);
    expect(served).toEqual([0, 1, 2, 3]);
  });

  it('hands a released lock to the head of the line, which the release wakes', async () => {
    const holder = await h.locks.acquire('conf:handoff');
    const { lock } = await queued(() =>
      h.locks.acquire('conf:handoff', { waitMs: WAIT_BACKSTOP_MS }),
    );
    const granted = nextEvent<LockAcquireEvent>(channelNames.lockAcquire);
    await holder.release();
    const event = await granted;
    expect(event.keys).toEqual(['conf:handoff']);
    // Polling is off for this test: only the release can have woken it.
    expect(event.wokenBy).toBe('release');
    await (await lock).release();
  });

  it('never lets a try-lock jump the line: the lock released goes to the waiter', async () => {
    const holder = await h.locks.acquire('conf:jump');
    const { lock } = await queued(() => h.locks.acquire('conf:jump', { waitMs: WAIT_BACKSTOP_MS }));
    await holder.release();
    expect(await h.locks.tryAcquire('conf:jump')).toBeNull();
    const waiter = await lock;
    expect(waiter.fencingToken).toBeGreaterThan(holder.fencingToken);
    await waiter.release();
  });

  it('lets readers share, and makes writers exclude readers and wait for them', async () => {
    const r1 = await h.locks.acquire('conf:rw', { mode: 'read' });
    const r2 = await h.locks.acquire('conf:rw', { mode: 'read', waitMs: 0 });
    expect(await h.locks.tryAcquire('conf:rw')).toBeNull();
    const { lock } = await queued(() => h.locks.acquire('conf:rw', { waitMs: WAIT_BACKSTOP_MS }));
    // A writer waits: a new reader does not overtake it.
    expect(await h.locks.tryAcquire('conf:rw', { mode: 'read' })).toBeNull();
    await r1.release();
    expect(await h.locks.isLocked('conf:rw')).toBe(true);
    await r2.release();
    const writer = await lock;
    expect(writer.mode).toBe('write');
    expect(await h.locks.tryAcquire('conf:rw', { mode: 'read' })).toBeNull();
    await writer.release();
    const reader = await h.locks.tryAcquire('conf:rw', { mode: 'read' });
    expect(reader).not.toBeNull();
    await reader!.release();
  });

  it('admits as many semaphore holders as permits, and wakes the next on a release', async () => {
    const a = await h.locks.acquire('conf:sem', { permits: 2 });
    const b = await h.locks.acquire('conf:sem', { permits: 2, waitMs: 0 });
    expect(await h.locks.tryAcquire('conf:sem', { permits: 2 })).toBeNull();
    const { lock } = await queued(() =>
      h.locks.acquire('conf:sem', { permits: 2, waitMs: WAIT_BACKSTOP_MS }),
    );
    const granted = nextEvent<LockAcquireEvent>(channelNames.lockAcquire);
    await a.release();
    expect((await granted).wokenBy).toBe('release');
    const c = await lock;
    expect(c.mode).toBe('semaphore');
    expect(await h.locks.tryAcquire('conf:sem', { permits: 2 })).toBeNull();
    await Promise.all([b.release(), c.release()]);
  });

  it('extends a held lock, and refuses to extend or release one no longer held', async () => {
    const lock = await h.locks.acquire('conf:extend', { ttlMs: 5_000 });
    expect(await lock.extend(20_000)).toBe(true);
    expect(await h.locks.extend(lock)).toBe(true);
    expect(await lock.release()).toBe(true);
    expect(await lock.extend()).toBe(false);
    expect(await lock.release()).toBe(false);
  });

  it('ends a lease at once with expireLock: the holder is told, the lock is free, and the stale holder changes nothing', async () => {
    const stale = await h.locks.acquire('conf:expire');
    await expireLock(stale);
    expect(stale.signal.aborted).toBe(true);
    expect(stale.signal.reason).toBeInstanceOf(LockLostError);
    const next = await h.locks.tryAcquire('conf:expire');
    expect(next).not.toBeNull();
    expect(await stale.extend()).toBe(false);
    expect(await stale.release()).toBe(false);
    expect(await h.locks.isLocked('conf:expire')).toBe(true);
    expect(await next!.release()).toBe(true);
  });

  describe('inspection, forced release and hand-over', () => {
    defineLockAdminConformance(() => h);
  });

  describe('a holder that stops renewing', () => {
    const ttlMs = 200;
    let polling: LockHarness;
    beforeAll(async () => {
      // Lease ends announce nothing: waiters learn of them by polling.
      polling = await makeHarness({ pollMs: ttlMs / 4 });
    });
    afterAll(() => polling?.close());

    it('loses the lock when its lease runs out; its late release and extend are refused', async () => {
      const { part, sentAt } = await polling.store.acquirePart(
        'conf:lease',
        crashedHolderRequest('conf:lease', ttlMs),
      );
      expect(await polling.locks.isLocked('conf:lease')).toBe(true);
      const next = await polling.locks.acquire('conf:lease', { waitMs: WAIT_BACKSTOP_MS });
      // Not before the lease's end, counted from the send, less the drift margin.
      expect(performance.now() - sentAt).toBeGreaterThanOrEqual(ttlMs - driftMs(ttlMs));
      expect(next.fencingToken).toBeGreaterThan(part.fence);
      expect(await polling.store.release(part, 'w')).toBe(false);
      expect(await polling.store.extend(part, 'w', ttlMs)).toBe(false);
      expect(await polling.locks.isLocked('conf:lease')).toBe(true);
      expect(await next.release()).toBe(true);
    });
  });
}
