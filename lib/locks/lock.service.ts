import { AsyncLocalStorage } from 'node:async_hooks';
import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { channels } from '../diagnostics/redis-tx.channels.js';
import { endLockHold, startLockHold, traceLockAcquire } from '../diagnostics/lock.tracing.js';
import { tracing } from '../diagnostics/redis-tx.tracing.js';
import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import { ShuttingDownError } from '../errors/shutting-down.error.js';
import { WaitCancel } from './wait-cancel.js';
import { LinkedSet } from '../shared/linked-set.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import {
  HeldLock,
  modeName,
  type HeldPart,
  type LockBackend,
  type ScriptMode,
} from './held-lock.js';
import { checkLockNames } from './lock-keys.js';
import {
  checkLockOptionKeys,
  checkLockOptions,
  refuseLockAtLeastFor,
} from './lock-options.validator.js';
import {
  LOCK_STORE,
  type AcquiredPart,
  type LockStore,
  type LockTerms,
  type PartRequest,
  type WokenBy,
} from './lock-store.js';
import type { Lock } from './lock.js';
import type { ForceReleaseResult, LockInspection } from './admin/lock-inspection.js';
import { adoptParts, scriptModes } from './portable/adopt-parts.js';
import { checkLockHandle, type LockHandle } from './portable/lock-handle.js';
import type { LockedOptions, LockOptions, LockUsingOptions } from './lock.options.js';
import { ReentrantLock } from './reentrant-lock.js';
import { settleWithin } from './settle-within.js';

/** `traceName`: the lock's template in the tracing channels, never a concrete key. */
type Resolved = LockTerms & { signal?: AbortSignal; traceName: string };

/**
 * Distributed locks: exclusive, read/write, and counting semaphores, with
 * leases renewed while held, fencing tokens, wake-ups on release, and re-entry
 * within one async call chain. Where the locks live (the module's Redis, or a
 * Redlock quorum) is the store's business; everything else happens here.
 */
@Injectable()
export class LockService implements BeforeApplicationShutdown, OnApplicationShutdown {
  /** The locks held by the current async call chain, by `mode:name`. */
  private readonly chain = new AsyncLocalStorage<ReadonlyMap<string, HeldLock>>();
  // LinkedSets, not Sets: an entry comes and goes with every lock (see LinkedSet).
  private readonly held = new LinkedSet<HeldLock>();
  private readonly waits = new LinkedSet<WaitCancel>();
  /** Bodies of `using`, `@Locked` and `runLocked` running now, each with its own release. */
  private readonly running = new LinkedSet<Promise<unknown>>();
  private readonly defaults: ResolvedRedisTxOptions['locks'];
  private readonly readyTimeoutMs: number;
  private readonly shutdownTimeoutMs: number;
  private readonly store: LockStore;
  private closing = false;
  private readonly isClosing = () => this.closing;
  private readonly backend: LockBackend;

  /** Created by Nest's dependency injection: inject the class, never construct it. @internal */
  constructor(
    @Inject(LOCK_STORE) store: LockStore,
    @Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions,
  ) {
    this.defaults = options.locks;
    this.readyTimeoutMs = options.transactions.readyTimeoutMs;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs;
    this.store = store;
    this.backend = {
      extend: (part, mode, ttlMs) => store.extend(part, mode, ttlMs),
      release: (part, mode) => store.release(part, mode),
      leaseEndsAt: (sentAt, ttlMs) => store.leaseEndsAt(sentAt, ttlMs),
      forget: (lock) => {
        this.held.delete(lock);
        endLockHold(lock);
      },
      lossReason: (part) => store.lossReason(part),
    };
  }

  /** The module's `locks.keyPrefix`, for tools that look for lock keys (the Terminus lock check). @internal */
  get keyPrefix(): string {
    return this.defaults.keyPrefix;
  }

  /** Acquires the lock, waiting up to `waitMs`; throws LockNotAcquiredError when it stays busy. */
  acquire(key: string | readonly string[], options: LockOptions = {}): Promise<Lock> {
    // Not an async function: the acquisition's own promise is returned, one
    // turn less per call; bad input still rejects rather than throws.
    try {
      checkLockOptionKeys(options, 'acquire', 'LockService.acquire()');
      return this.acquireAs('LockService.acquire()', key, options);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /**
   * Acquires the lock if it is free right now; null when it is busy, and
   * only then: any other refusal (Redis unreachable, shutting down…) throws
   * LockNotAcquiredError with its `reason`.
   */
  async tryAcquire(
    key: string | readonly string[],
    options: Omit<LockOptions, 'waitMs'> = {},
  ): Promise<Lock | null> {
    checkLockOptionKeys(options, 'tryAcquire', 'LockService.tryAcquire()');
    try {
      return await this.acquireAs('LockService.tryAcquire()', key, { ...options, waitMs: 0 });
    } catch (error) {
      if (error instanceof LockNotAcquiredError && error.reason === 'busy') return null;
      throw error;
    }
  }

  /** Checks the key and options, naming the method they were given to, then acquires. */
  private acquireAs(
    label: string,
    key: string | readonly string[],
    options: LockOptions,
  ): Promise<Lock> {
    checkLockOptions(options, label);
    refuseLockAtLeastFor(options, label);
    const names = checkLockNames(key, this.defaults.maxKeyLength, label);
    return this.acquireChecked(names, this.resolve(options, label));
  }

  /** Runs `fn` holding the lock, and releases it however `fn` ends (kept until `lockAtLeastFor`, if given). */
  async using<T>(
    key: string | readonly string[],
    fn: (lock: Lock) => T | Promise<T>,
    options: LockUsingOptions = {},
  ): Promise<T> {
    checkLockOptionKeys(options, 'using', 'LockService.using()');
    checkLockOptions(options, 'LockService.using()');
    const names = checkLockNames(key, this.defaults.maxKeyLength, 'LockService.using()');
    return this.runHolding(
      names,
      this.resolve(options, 'LockService.using()'),
      fn,
      options.lockAtLeastFor,
    );
  }

  /** Whether anyone holds the lock now (any mode). */
  async isLocked(key: string): Promise<boolean> {
    const [name] = checkLockNames(key, this.defaults.maxKeyLength, 'LockService.isLocked()');
    return this.store.isLocked(name!);
  }

  /**
   * What the store holds under `key` now: its holders (mode, fencing token of
   * a writer, lease left, how long held), the line of waiters in order with
   * how long each has waited, and for a semaphore the permits in use. A
   * snapshot for operators and health checks, never a basis for deciding
   * who may write (use fencing tokens for that). No secret token is in it.
   *
   * @throws InvalidLockKeyError for a key that could not be a lock name.
   * @throws InvalidOptionsError with `locks.redlock` (no single view of a quorum lock).
   * @throws RedisTxError when Redis cannot be reached or refuses (RedisPermissionError).
   */
  async inspect(key: string): Promise<LockInspection> {
    const [name] = checkLockNames(key, this.defaults.maxKeyLength, 'LockService.inspect()');
    return this.store.inspect(name!);
  }

  /**
   * Frees a stuck lock: evicts every holder (any mode) whoever holds it,
   * keeps the line of waiters and hands the lock to its head or wakes it,
   * as a release does, and raises the key's fencing counter, returning a
   * token above every one given out so far. An evicted holder finds out at
   * its next renewal (within a third of its lease): its `signal` aborts with
   * LockLostError (`reason: 'force-released'`), and its `release()` returns
   * false. It may still be writing until then: only a fenced resource
   * refuses its late writes. Meant for operators; atomic in Redis.
   *
   * @throws InvalidLockKeyError for a key that could not be a lock name.
   * @throws InvalidOptionsError with `locks.redlock` (not all masters could be evicted at once).
   * @throws RedisTxError when Redis cannot be reached or refuses (the outcome is then unknown: check with inspect()).
   */
  async forceRelease(key: string): Promise<ForceReleaseResult> {
    const [name] = checkLockNames(key, this.defaults.maxKeyLength, 'LockService.forceRelease()');
    return this.store.forceRelease(name!);
  }

  /**
   * Takes over a lock another process handed over with `lock.toHandle()`:
   * renews its lease by the handle's token (which proves it is still that
   * holder's) and returns a held lock with the same keys, mode and fencing
   * tokens, renewed, released and aborted (`signal`) as any other. Not
   * joined to the current call chain (`current()` does not see it).
   *
   * @throws InvalidOptionsError when `handle` is not one toHandle() made.
   * @throws LockNotAcquiredError with `reason: 'lease-expired'` when the
   *   lease ended before the handle arrived, or the lock is no longer the
   *   handle's (expired, force-released); `'connection'` when Redis could
   *   not be reached; `'shutdown'` while the application shuts down.
   */
  async adopt(handle: LockHandle): Promise<Lock> {
    const checked = checkLockHandle(handle);
    const names = checked.keys.map(
      (key) => checkLockNames(key, this.defaults.maxKeyLength, 'LockService.adopt()')[0]!,
    );
    if (this.closing) {
      throw new LockNotAcquiredError(messages.lockShuttingDown, names, { reason: 'shutdown' });
    }
    const mode = scriptModes[checked.mode];
    this.store.refuseUnsupported({ mode, replicaAcks: 0 }, 'LockService.adopt()');
    const adopted = await adoptParts(this.store, checked, this.defaults.keyPrefix);
    if (this.closing) {
      await this.releaseParts(adopted.parts, mode);
      throw new LockNotAcquiredError(messages.lockShuttingDown, names, { reason: 'shutdown' });
    }
    const options: Resolved = {
      mode,
      ttlMs: checked.ttlMs,
      waitMs: 0,
      permits: 0,
      replicaAcks: 0,
      replicaAckTimeoutMs: 0,
      signal: undefined,
      traceName: 'LockService.adopt()',
    };
    return this.hold(
      adopted.parts,
      options,
      adopted.sentAt,
      adopted.leaseEnd,
      adopted.sentAt,
      'first-try',
    );
  }

  /** Renews a held lock's lease; false when it was no longer held. */
  extend(lock: Lock, ttlMs?: number): Promise<boolean> {
    return lock.extend(ttlMs);
  }

  /** The lock the current call chain holds on `key` (or the innermost one), e.g. for its fencing token inside a `@Locked` method. */
  current(key?: string): Lock | undefined {
    const held = this.chain.getStore();
    if (!held) return undefined;
    const locks = [...held.entries()];
    const match = key === undefined ? locks.at(-1) : locks.findLast(([id]) => id.slice(2) === key);
    return match?.[1];
  }

  /**
   * The locks this service holds now on `key`, whichever call chain took
   * them. For `nestjs-redis-tx/testing` (`expireLock(locks, key)`).
   * @internal
   */
  heldOn(key: string): HeldLock[] {
    return [...this.held].filter((lock) => lock.keys.includes(key));
  }

  /**
   * Throws LockLostError when a lock held by the current async call chain is
   * lost, or past the end of its lease on this process's clock. Synchronous,
   * and a clock read per lock: meant for right before a write that must not
   * happen without the lock, such as the EXEC of a transaction under
   * `@Locked`. A process that resumes after being paused past its lease
   * learns it here, before the write, even if no timer has run yet.
   */
  assertChainLeases(): void {
    const held = this.chain.getStore();
    if (!held) return;
    for (const lock of held.values()) lock.assertLeaseValid();
  }

  /**
   * Whether the current call chain runs inside a `using`, `@Locked` or
   * `runLocked` body whose lock this service still holds: work that shutdown
   * waits for, so that the transactions it starts may still run. @internal
   */
  inHoldingBody(): boolean {
    const held = this.chain.getStore();
    if (!held) return false;
    for (const lock of held.values()) if (this.held.has(lock)) return true;
    return false;
  }

  /**
   * The `@Locked` path: `skip` resolves to undefined, without running the
   * method, when the lock is held elsewhere (busy, or still held when
   * `waitMs` ran out); every other refusal throws.
   */
  async runLocked(
    rawKey: unknown,
    options: LockedOptions,
    label: string,
    fn: () => Promise<unknown>,
  ): Promise<unknown> {
    const names = checkLockNames(rawKey, this.defaults.maxKeyLength, label);
    let entered = false;
    try {
      return await this.runHolding(
        names,
        this.resolve(options, label),
        () => {
          entered = true;
          return fn();
        },
        options.lockAtLeastFor,
      );
    } catch (error) {
      if (!entered && options.onBusy === 'skip' && heldElsewhere(error)) return undefined;
      throw error;
    }
  }

  /**
   * Shutting down, in this order: (1) no new acquisition is accepted (they
   * refuse with reason 'shutdown'); (2) every wait ends, refused the same
   * way; (3) every held lock's `signal` aborts with ShuttingDownError, while
   * its lease is still renewed; (4) running holders (bodies of `using`,
   * `@Locked`, `runLocked`) get up to `shutdownTimeoutMs` to return and
   * release as usual; (5) every lock still held is released once, however
   * many holds its call chain has on it, waiting at most `readyTimeoutMs`
   * for Redis. A release Redis does not answer (unreachable, frozen) never
   * holds up the shutdown: the lease ends that lock by itself.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    for (const wait of this.waits) wait.cancel();
    for (const lock of this.held) {
      lock.abortHolder(new ShuttingDownError(messages.lockHolderShuttingDown(lock.keys)));
    }
    await settleWithin([...this.running], this.shutdownTimeoutMs);
    await settleWithin(
      [...this.held].map((lock) => lock.releaseAllHolds().catch(() => false)),
      this.readyTimeoutMs,
    );
  }

  /** The call-chain storage leaves Node's list of live storages, which every promise of the process pays for (see TransactionRunner). */
  onApplicationShutdown(): void {
    this.chain.disable();
  }

  private async runHolding<T>(
    names: string[],
    options: Resolved,
    fn: (lock: Lock) => T | Promise<T>,
    lockAtLeastFor = 0,
  ): Promise<T> {
    const lock = await this.acquireChecked(names, options);
    const run = this.runWith(lock, fn, lockAtLeastFor);
    // Watched by the shutdown, which lets it finish before releasing what is left.
    this.running.add(run);
    try {
      return await run;
    } finally {
      this.running.delete(run);
    }
  }

  private async runWith<T>(
    lock: Lock,
    fn: (lock: Lock) => T | Promise<T>,
    lockAtLeastFor: number,
  ): Promise<T> {
    const inChain = new Map(this.chain.getStore());
    for (const [id, held] of lockParts(lock)) inChain.set(id, held);
    try {
      return await this.chain.run(inChain, () => fn(lock));
    } finally {
      // Only a lock this call took is kept: where the call chain already
      // held some of the names, the outer holder decides when they go.
      const done =
        lockAtLeastFor > 0 && lock instanceof HeldLock
          ? lock.releaseKeeping(lockAtLeastFor)
          : lock.release();
      await done.catch(() => false);
    }
  }

  private resolve(options: LockOptions, entry: string): Resolved {
    const { permits, mode, signal } = options;
    const resolved: Resolved = {
      mode: permits !== undefined ? 's' : mode === 'read' ? 'r' : 'w',
      ttlMs: options.ttlMs ?? this.defaults.ttlMs,
      waitMs: options.waitMs ?? this.defaults.waitMs,
      permits: permits ?? 0,
      replicaAcks: options.replicaAcks ?? this.defaults.replicaAcks,
      replicaAckTimeoutMs: options.replicaAckTimeoutMs ?? this.defaults.replicaAckTimeoutMs,
      signal,
      traceName: options.traceName ?? entry,
    };
    this.store.refuseUnsupported(resolved, 'LockService');
    return resolved;
  }

  /** Acquires, published on the `lock.acquire` tracing channel when it has subscribers. */
  private acquireChecked(names: string[], options: Resolved): Promise<Lock> {
    return tracing.lockAcquire.hasSubscribers
      ? traceLockAcquire(options.traceName, modeName(options.mode), names.length, () =>
          this.acquireUntraced(names, options),
        )
      : this.acquireUntraced(names, options);
  }

  /** Re-enters what this call chain already holds and acquires the rest, all or none. */
  private acquireUntraced(names: string[], options: Resolved): Promise<Lock> {
    if (this.closing) {
      return Promise.reject(
        new LockNotAcquiredError(messages.lockShuttingDown, names, { reason: 'shutdown' }),
      );
    }
    const inChain = this.chain.getStore();
    // A call chain holding no lock has nothing to re-enter.
    if (!inChain) return this.acquireFresh(names, options);
    return this.acquireReentering(inChain, names, options);
  }

  private async acquireReentering(
    inChain: ReadonlyMap<string, HeldLock>,
    names: string[],
    options: Resolved,
  ): Promise<Lock> {
    // A set: one multi-key lock re-entered through several of its keys is one hold.
    const reentered = new Set<HeldLock>();
    const missing: string[] = [];
    for (const name of names) {
      const held = heldInChain(inChain, name, options.mode);
      if (held) reentered.add(held);
      else missing.push(name);
    }
    for (const held of reentered) {
      try {
        // Entered again only while its lease is valid on this clock: a lost lock is no lock.
        held.assertLeaseValid();
      } catch (cause) {
        throw new LockNotAcquiredError(messages.lockReentryLost(names), names, {
          reason: 'lease-expired',
          cause,
        });
      }
    }
    for (const held of reentered) held.enter();
    try {
      const fresh = missing.length > 0 ? await this.acquireFresh(missing, options) : undefined;
      if (reentered.size === 0 && fresh) return fresh;
      return new ReentrantLock([...reentered, ...(fresh ? [fresh] : [])], names);
    } catch (error) {
      for (const held of reentered) await held.release();
      throw error;
    }
  }

  private async acquireFresh(names: string[], options: Resolved): Promise<HeldLock> {
    // Made only once a wait begins: most acquisitions never wait.
    let cancel: WaitCancel | undefined;
    const cancelForWait = (): WaitCancel => {
      if (!cancel) {
        cancel = new WaitCancel();
        this.waits.add(cancel);
        if (this.closing) cancel.cancel();
        cancel.follow(options.signal);
      }
      return cancel;
    };
    const deadline = performance.now() + options.waitMs;
    const started = performance.now();
    const request: PartRequest = {
      mode: options.mode,
      ttlMs: options.ttlMs,
      waitMs: options.waitMs,
      permits: options.permits,
      replicaAcks: options.replicaAcks,
      replicaAckTimeoutMs: options.replicaAckTimeoutMs,
      deadline,
      allNames: names,
      cancelForWait,
      closing: this.isClosing,
    };
    try {
      for (;;) {
        // Most locks have one name: taken without the loop and its arrays.
        const won =
          names.length === 1
            ? [await this.store.acquirePart(names[0]!, request)]
            : await this.acquireParts(names, request);
        let sentAt = won[0]!.sentAt;
        for (const a of won) sentAt = Math.min(sentAt, a.sentAt);
        // The earliest send time gives the earliest lease end: leaseEndsAt only adds to it.
        const leaseEnd = this.store.leaseEndsAt(sentAt, options.ttlMs);
        const parts = won.map((a) => a.part);
        // Handed over only while the lease is valid on this clock, measured
        // from when the request that won it was sent: a reply (or a wake-up)
        // handled later than that proves nothing about who holds it now.
        if (performance.now() < leaseEnd && !this.closing) {
          return this.hold(parts, options, sentAt, leaseEnd, started, won.at(-1)!.wokenBy);
        }
        await this.releaseParts(parts, options.mode);
        if (this.closing) {
          throw new LockNotAcquiredError(messages.lockShuttingDown, names, { reason: 'shutdown' });
        }
        if (performance.now() >= deadline) {
          throw new LockNotAcquiredError(
            messages.lockLeaseExpired(names, options.ttlMs, options.waitMs),
            names,
            { reason: 'lease-expired' },
          );
        }
      }
    } finally {
      if (cancel) {
        this.waits.delete(cancel);
        cancel.detach();
      }
    }
  }

  /** Takes every name in order, all or none: what was taken is given back when a later one fails. */
  private async acquireParts(names: string[], request: PartRequest): Promise<AcquiredPart[]> {
    const won: AcquiredPart[] = [];
    try {
      for (const name of names) won.push(await this.store.acquirePart(name, request));
      return won;
    } catch (error) {
      await this.releaseParts(
        won.map((a) => a.part),
        request.mode,
      );
      throw error;
    }
  }

  private async releaseParts(parts: readonly HeldPart[], mode: ScriptMode): Promise<void> {
    await Promise.all(parts.map((part) => this.store.release(part, mode).catch(() => false)));
  }

  private newHeldLock(
    parts: HeldPart[],
    options: Resolved,
    sentAt: number,
    leaseEnd: number,
  ): HeldLock {
    const mode = modeName(options.mode);
    return new HeldLock(parts, mode, options.mode, options.ttlMs, this.backend, sentAt, leaseEnd);
  }

  private hold(
    parts: HeldPart[],
    options: Resolved,
    sentAt: number,
    leaseEnd: number,
    started: number,
    wokenBy: WokenBy,
  ): HeldLock {
    const mode = modeName(options.mode);
    const lock = tracing.lockHold.hasSubscribers
      ? startLockHold(options.traceName, mode, parts.length, () =>
          this.newHeldLock(parts, options, sentAt, leaseEnd),
        )
      : this.newHeldLock(parts, options, sentAt, leaseEnd);
    this.held.add(lock);
    this.store.held(lock);
    channels.lockAcquire.publish(() => ({
      keys: parts.map((p) => p.name),
      mode,
      fencingTokens: parts.map((p) => p.fence),
      waitedMs: performance.now() - started,
      wokenBy,
    }));
    return lock;
  }
}

/** A refusal because someone else holds the lock, as opposed to the caller's or the infrastructure's doing. */
function heldElsewhere(error: unknown): boolean {
  return (
    error instanceof LockNotAcquiredError && (error.reason === 'busy' || error.reason === 'timeout')
  );
}

/** A chain holding `name` for writing may read it too; a reader may not start writing (that would wait on itself). */
function heldInChain(
  chain: ReadonlyMap<string, HeldLock>,
  name: string,
  mode: ScriptMode,
): HeldLock | undefined {
  const writer = chain.get(`w:${name}`);
  if (writer && mode !== 's') return writer;
  const same = chain.get(`${mode}:${name}`);
  if (same) return same;
  if (mode === 'w' && chain.has(`r:${name}`)) {
    throw new LockNotAcquiredError(messages.lockUpgrade(name), [name], {
      reason: 'would-deadlock',
    });
  }
  return undefined;
}

function lockParts(lock: Lock): [string, HeldLock][] {
  const locks = lock instanceof ReentrantLock ? lock.locks : [lock as HeldLock];
  return locks.flatMap((held) =>
    held.parts.map((part): [string, HeldLock] => [`${held.scriptMode}:${part.name}`, held]),
  );
}
