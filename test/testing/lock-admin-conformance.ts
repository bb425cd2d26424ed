import { once } from 'node:events';
import {
  channelNames,
  InvalidOptionsError,
  LockLostError,
  LockNotAcquiredError,
  type Lock,
} from '../../lib/index.js';
import { nextEvent } from '../support/next-event.js';
import type { LockHarness } from './lock-conformance.js';

const WAIT_BACKSTOP_MS = 30_000;

/** Starts `acquire` and resolves once the caller waits in line. */
async function queued(start: () => Promise<Lock>): Promise<{ lock: Promise<Lock> }> {
  const waiting = nextEvent(channelNames.lockWait);
  const lock = start();
  // A test that fails before awaiting it must not leave a rejection unhandled at close.
  lock.catch(() => undefined);
  await waiting;
  return { lock };
}

/** The aborted signal's reason, once it aborts. */
async function lossOf(lock: Lock): Promise<LockLostError> {
  if (!lock.signal.aborted) await once(lock.signal, 'abort');
  return lock.signal.reason as LockLostError;
}

/**
 * inspect(), forceRelease() and adopt(): what operators and hand-overs see
 * must not depend on the store either.
 */
export function defineLockAdminConformance(harness: () => LockHarness): void {
  const locks = () => harness().locks;

  it('inspects a free lock as free', async () => {
    expect(await locks().inspect('conf:free')).toEqual({
      key: 'conf:free',
      locked: false,
      holders: [],
      waiting: [],
      waitingCount: 0,
    });
  });

  it('inspects a writer and its line in order, with no token in sight', async () => {
    const before = Date.now();
    const holder = await locks().acquire('conf:inspect', { ttlMs: 10_000 });
    const { lock: writer } = await queued(() =>
      locks().acquire('conf:inspect', { waitMs: WAIT_BACKSTOP_MS }),
    );
    const { lock: reader } = await queued(() =>
      locks().acquire('conf:inspect', { mode: 'read', waitMs: WAIT_BACKSTOP_MS }),
    );
    const seen = await locks().inspect('conf:inspect');
    const elapsed = Date.now() - before;
    expect(seen).toMatchObject({ key: 'conf:inspect', locked: true, waitingCount: 2 });
    expect(seen.holders).toHaveLength(1);
    const [held] = seen.holders;
    expect(held).toMatchObject({ mode: 'write', fencingToken: holder.fencingToken });
    expect(held!.leaseRemainingMs).toBeGreaterThan(0);
    expect(held!.leaseRemainingMs).toBeLessThanOrEqual(10_000);
    expect(held!.heldMs).toBeGreaterThanOrEqual(0);
    expect(held!.heldMs).toBeLessThanOrEqual(elapsed);
    expect(seen.waiting.map((w) => w.mode)).toEqual(['write', 'read']);
    for (const w of seen.waiting) {
      expect(w.waitingMs).toBeGreaterThanOrEqual(0);
      expect(w.waitingMs).toBeLessThanOrEqual(elapsed);
    }
    expect(seen.waiting[0]!.waitingMs).toBeGreaterThanOrEqual(seen.waiting[1]!.waitingMs!);
    expect(JSON.stringify(seen)).not.toMatch(/[0-9a-f]{32}/);
    await holder.release();
    await (await writer).release();
    await (await reader).release();
  });

  it('inspects readers and semaphore permits', async () => {
    const readers = [
      await locks().acquire('conf:inspect-r', { mode: 'read' }),
      await locks().acquire('conf:inspect-r', { mode: 'read' }),
    ];
    const seenReaders = await locks().inspect('conf:inspect-r');
    expect(seenReaders.holders.map((x) => [x.mode, x.fencingToken])).toEqual([
      ['read', undefined],
      ['read', undefined],
    ]);
    expect(seenReaders.permits).toBeUndefined();
    const permits = [
      await locks().acquire('conf:inspect-s', { permits: 3 }),
      await locks().acquire('conf:inspect-s', { permits: 3 }),
    ];
    const seenPermits = await locks().inspect('conf:inspect-s');
    expect(seenPermits.holders.every((x) => x.mode === 'semaphore')).toBe(true);
    expect(seenPermits.permits).toEqual({ inUse: 2, total: 3 });
    await Promise.all([...readers, ...permits].map((lock) => lock.release()));
  });

  it('force-releases: the holder learns why at its next renewal, the line is served, fencing tokens rise', async () => {
    const evicted = await locks().acquire('conf:force', { ttlMs: 3_000 });
    const { lock: next } = await queued(() =>
      locks().acquire('conf:force', { waitMs: WAIT_BACKSTOP_MS }),
    );
    const result = await locks().forceRelease('conf:force');
    expect(result).toMatchObject({ key: 'conf:force', evicted: 1 });
    expect(result.fencingToken).toBeGreaterThan(evicted.fencingToken);
    const successor = await next;
    expect(successor.fencingToken).toBeGreaterThan(result.fencingToken);
    const loss = await lossOf(evicted);
    expect(loss).toBeInstanceOf(LockLostError);
    expect(loss.reason).toBe('force-released');
    expect(await evicted.release()).toBe(false);
    expect(await successor.release()).toBe(true);
    expect(await locks().forceRelease('conf:force')).toMatchObject({ evicted: 0 });
  });

  it('force-releases every reader and permit holder', async () => {
    const held = [
      await locks().acquire('conf:force-r', { mode: 'read', ttlMs: 3_000 }),
      await locks().acquire('conf:force-r', { mode: 'read', ttlMs: 3_000 }),
    ];
    expect((await locks().forceRelease('conf:force-r')).evicted).toBe(2);
    expect(await locks().isLocked('conf:force-r')).toBe(false);
    for (const lock of held) expect((await lossOf(lock)).reason).toBe('force-released');
  });

  it('hands a lock over: the old holder lets go, the adopter keeps its fencing token and releases it', async () => {
    const lock = await locks().acquire('conf:handle', { ttlMs: 10_000 });
    const handle = JSON.parse(JSON.stringify(lock.toHandle())) as ReturnType<Lock['toHandle']>;
    expect(lock.signal.aborted).toBe(true);
    expect((lock.signal.reason as LockLostError).reason).toBe('handed-over');
    expect(await lock.release()).toBe(false);
    expect(await locks().isLocked('conf:handle')).toBe(true);
    const adopted = await locks().adopt(handle);
    expect(adopted.fencingToken).toBe(lock.fencingToken);
    expect(adopted.keys).toEqual(['conf:handle']);
    expect(await adopted.extend()).toBe(true);
    expect(await adopted.release()).toBe(true);
    expect(await locks().isLocked('conf:handle')).toBe(false);
    const late = await locks()
      .adopt(handle)
      .catch((e: unknown) => e);
    expect(late).toBeInstanceOf(LockNotAcquiredError);
    expect((late as LockNotAcquiredError).reason).toBe('lease-expired');
  });

  it('refuses to hand over a re-entered lock, or adopt a handle that is not one', async () => {
    await locks().using('conf:handle-re', async () => {
      await locks().using('conf:handle-re', async (inner) => {
        expect(() => inner.toHandle()).toThrow(InvalidOptionsError);
      });
    });
    await expect(locks().adopt({} as never)).rejects.toThrow(InvalidOptionsError);
  });
}
