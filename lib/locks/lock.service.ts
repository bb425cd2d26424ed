import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { isCluster } from '../connection/cluster-slots.js';
import { RedisConnections } from '../connection/redis-connections.js';
import type { TxConnection } from '../connection/tx-connection.js';
import { isConnectionLostError } from '../connection/redis-client.js';
import { channels } from '../diagnostics/redis-tx.channels.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import { isLockRefusal, lockRefusal } from '../errors/lock-refusal.js';
import { RedisTxError } from '../errors/redis-tx.error.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import { HeldLock, type HeldPart, type LockBackend, type ScriptMode } from './held-lock.js';
import { checkLockNames, lockRedisKeys, type LockRedisKeys } from './lock-keys.js';
import { lockSlotKeys, type LockSlotKeys } from './lock-slot-keys.js';
import { newToken } from './lock-token.js';
import { checkLockOptions } from './lock-options.validator.js';
import type { Lock } from './lock.js';
import type { LockedOptions, LockOptions } from './lock.options.js';
import { type LockScriptCommands } from './lock.scripts.js';
import { ReentrantLock } from './reentrant-lock.js';
import { ReplicaAcks } from './replica-acks.js';
import { ReleaseListener, type Subscription } from './release-listener.js';
import { RedlockLocks } from './redlock/redlock.locks.js';

type Resolved = Required<Omit<LockOptions, 'signal' | 'mode' | 'permits'>> & {
  scriptMode: ScriptMode;
  permits: number;
  signal?: AbortSignal;
};

/**
 * Distributed locks on the module's Redis: exclusive, read/write, and
 * counting semaphores, with leases renewed while held, fencing tokens, fair
 * wake-ups on release, and re-entry within one async call chain.
 */
@Injectable()
export class LockService implements BeforeApplicationShutdown {
  /** The locks held by the current async call chain, by `mode:name`. */
  private readonly chain = new AsyncLocalStorage<ReadonlyMap<string, HeldLock>>();
  private readonly held = new Set<HeldLock>();
  private readonly waits = new Set<AbortController>();
  private readonly listener: ReleaseListener;
  private readonly defaults: ResolvedRedisTxOptions['locks'];
  private readonly slotKeys: LockSlotKeys;
  private readonly readyTimeoutMs: number;
  private readonly replicaAcks: ReplicaAcks;
  private closing = false;
  private readonly backend: LockBackend = {
    extend: async (part, mode, ttlMs) =>
      this.redlock.enabled
        ? this.redlock.extend(part, ttlMs)
        : (await this.script('nestjsRedisTxLockExtend', part.name, [
            ...scriptKeys(part.keys).slice(0, 3),
            part.token,
            mode,
            ttlMs,
          ])) === 1,
    release: (part, mode) => this.releasePart(part, mode),
    forget: (lock) => this.held.delete(lock),
  };

  constructor(
    private readonly connections: RedisConnections,
    @Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions,
    private readonly redlock: RedlockLocks,
  ) {
    this.defaults = options.locks;
    this.slotKeys = lockSlotKeys(options.locks.keyPrefix, isCluster(connections.shared));
    this.readyTimeoutMs = options.transactions.readyTimeoutMs;
    this.listener = new ReleaseListener(connections, this.slotKeys.sharded);
    this.replicaAcks = new ReplicaAcks(connections.watchPool);
  }

  /** Acquires the lock, waiting up to `waitMs`; throws LockNotAcquiredError when it stays busy. */
  async acquire(key: string | readonly string[], options: LockOptions = {}): Promise<Lock> {
    return await this.acquireAs('LockService.acquire()', key, options);
  }

  /** Acquires the lock if it is free right now; null when busy. */
  async tryAcquire(
    key: string | readonly string[],
    options: Omit<LockOptions, 'waitMs'> = {},
  ): Promise<Lock | null> {
    try {
      return await this.acquireAs('LockService.tryAcquire()', key, { ...options, waitMs: 0 });
    } catch (error) {
      if (error instanceof LockNotAcquiredError) return null;
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
    const names = checkLockNames(key, this.defaults.maxKeyLength, label);
    return this.acquireChecked(names, this.resolve(options));
  }

  /** Runs `fn` holding the lock, and releases it however `fn` ends. */
  async using<T>(
    key: string | readonly string[],
    fn: (lock: Lock) => T | Promise<T>,
    options: LockOptions = {},
  ): Promise<T> {
    checkLockOptions(options, 'LockService.using()');
    const names = checkLockNames(key, this.defaults.maxKeyLength, 'LockService.using()');
    return this.runHolding(names, this.resolve(options), fn);
  }

  /** Whether anyone holds the lock now (any mode). */
  async isLocked(key: string): Promise<boolean> {
    const [name] = checkLockNames(key, this.defaults.maxKeyLength, 'LockService.isLocked()');
    if (this.redlock.enabled) return this.redlock.isLocked(name!);
    const keys = lockRedisKeys(this.defaults.keyPrefix, name!);
    return (
      (await this.script('nestjsRedisTxLockIsLocked', name!, [
        keys.writer,
        keys.readers,
        keys.permits,
      ])) === 1
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

  /** The `@Locked` path: `skip` resolves to undefined when the lock is busy, without running the method. */
  async runLocked(
    rawKey: unknown,
    options: LockedOptions,
    label: string,
    fn: () => Promise<unknown>,
  ): Promise<unknown> {
    const names = checkLockNames(rawKey, this.defaults.maxKeyLength, label);
    let entered = false;
    try {
      return await this.runHolding(names, this.resolve(options), () => {
        entered = true;
        return fn();
      });
    } catch (error) {
      if (!entered && options.onBusy === 'skip' && error instanceof LockNotAcquiredError)
        return undefined;
      throw error;
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    for (const wait of this.waits) wait.abort();
    const releases = Promise.all([...this.held].map((lock) => lock.release().catch(() => false)));
    // A release Redis does not answer (unreachable, frozen) must not hold up
    // the shutdown: the lease ends that lock by itself.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      releases,
      new Promise((resolve) => (timer = setTimeout(resolve, this.readyTimeoutMs))),
    ]);
    clearTimeout(timer);
  }

  private async runHolding<T>(
    names: string[],
    options: Resolved,
    fn: (lock: Lock) => T | Promise<T>,
  ): Promise<T> {
    const lock = await this.acquireChecked(names, options);
    const inChain = new Map(this.chain.getStore());
    for (const [id, held] of lockParts(lock)) inChain.set(id, held);
    try {
      return await this.chain.run(inChain, () => fn(lock));
    } finally {
      await lock.release().catch(() => false);
    }
  }

  private resolve(options: LockOptions): Resolved {
    const { permits, mode, signal } = options;
    if (this.redlock.enabled && (mode === 'read' || permits !== undefined)) {
      const option = permits !== undefined ? 'permits' : 'mode';
      throw new InvalidOptionsError(option, messages.redlockExclusiveOnly(option, 'LockService'));
    }
    const replicaAcks = options.replicaAcks ?? this.defaults.replicaAcks;
    if (replicaAcks > 0 && (this.redlock.enabled || isCluster(this.connections.shared))) {
      const setup = this.redlock.enabled ? 'redlock' : 'cluster';
      throw new InvalidOptionsError(
        'replicaAcks',
        messages.replicaAcksUnsupported('LockService', setup),
      );
    }
    return {
      replicaAcks,
      replicaAckTimeoutMs: options.replicaAckTimeoutMs ?? this.defaults.replicaAckTimeoutMs,
      ttlMs: options.ttlMs ?? this.defaults.ttlMs,
      waitMs: options.waitMs ?? this.defaults.waitMs,
      scriptMode: permits !== undefined ? 's' : mode === 'read' ? 'r' : 'w',
      permits: permits ?? 0,
      signal,
    };
  }

  /** Re-enters what this call chain already holds and acquires the rest, all or none. */
  private async acquireChecked(names: string[], options: Resolved): Promise<Lock> {
    if (this.closing) throw new LockNotAcquiredError(messages.lockShuttingDown, names);
    const inChain = this.chain.getStore();
    // A set: one multi-key lock re-entered through several of its keys is one hold.
    const reentered = new Set<HeldLock>();
    const missing: string[] = [];
    for (const name of names) {
      const held = inChain && heldInChain(inChain, name, options.scriptMode);
      if (held) reentered.add(held);
      else missing.push(name);
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
    let waitController: AbortController | undefined;
    let waitSignal: AbortSignal | undefined;
    const signalForWait = (): AbortSignal => {
      if (!waitSignal) {
        waitController = new AbortController();
        this.waits.add(waitController);
        if (this.closing) waitController.abort();
        waitSignal = options.signal
          ? AbortSignal.any([options.signal, waitController.signal])
          : waitController.signal;
      }
      return waitSignal;
    };
    const deadline = performance.now() + options.waitMs;
    const started = performance.now();
    const parts: HeldPart[] = [];
    let leaseStartedAt = 0;
    let wokenBy: 'first-try' | 'release' | 'poll' = 'first-try';
    try {
      for (const name of names) {
        const acquired = await this.listeningFor(name, deadline, (hear) =>
          this.acquirePart(name, options, deadline, signalForWait, names, hear),
        );
        if (parts.length === 0) leaseStartedAt = acquired.sentAt;
        parts.push(acquired.part);
        wokenBy = acquired.wokenBy;
      }
    } catch (error) {
      await Promise.all(
        parts.map((part) => this.releasePart(part, options.scriptMode).catch(() => false)),
      );
      throw error;
    } finally {
      if (waitController) this.waits.delete(waitController);
    }
    const mode =
      options.scriptMode === 's' ? 'semaphore' : options.scriptMode === 'r' ? 'read' : 'write';
    const lock = new HeldLock(
      parts,
      mode,
      options.scriptMode,
      options.ttlMs,
      this.backend,
      leaseStartedAt,
    );
    this.held.add(lock);
    if (this.redlock.enabled) this.redlock.watchLoss(lock);
    channels.lockAcquire.publish(() => ({
      keys: names,
      mode,
      fencingTokens: parts.map((p) => p.fence),
      waitedMs: performance.now() - started,
      wokenBy,
    }));
    return lock;
  }

  /**
   * Lets `acquire` subscribe to the lock's hand-off channel once it is about
   * to wait (a lock found free subscribes to nothing), and unsubscribes when
   * it is done.
   */
  private async listeningFor<T>(
    name: string,
    deadline: number,
    acquire: (hear: HandOffs) => Promise<T>,
  ): Promise<T> {
    if (this.redlock.enabled || deadline <= performance.now()) return acquire(noHandOffs);
    const channel = this.slotKeys.channel(lockRedisKeys(this.defaults.keyPrefix, name));
    let stop: (() => void) | undefined;
    const hear: HandOffs = {
      established: () => this.listener.established(channel),
      listen: async (before) => {
        if (stop) return true;
        const held = await this.listener.hold(channel);
        stop = held.stop;
        return held.subscription === before;
      },
    };
    try {
      return await acquire(hear);
    } finally {
      stop?.();
    }
  }

  private async acquirePart(
    name: string,
    options: Resolved,
    deadline: number,
    signalForWait: () => AbortSignal,
    allNames: readonly string[],
    hear: HandOffs,
  ): Promise<{ part: HeldPart; sentAt: number; wokenBy: 'first-try' | 'release' | 'poll' }> {
    if (this.redlock.enabled) {
      const { ttlMs, waitMs } = options;
      const closing = () => this.closing;
      const request = { ttlMs, waitMs, deadline, allNames, signalForWait, closing };
      return this.redlock.acquirePart(name, request);
    }
    // The suffix tells the release script what this waiter wants, so it can hand the lock over.
    const token = `${newToken()}.${options.scriptMode}.${options.ttlMs}`;
    const keys = lockRedisKeys(this.defaults.keyPrefix, name);
    const canWait = deadline > performance.now();
    const { pollMs } = this.defaults;
    let wokenBy: 'first-try' | 'release' | 'poll' = 'first-try';
    let queued = false;
    for (;;) {
      const listeningBefore = hear.established();
      const sentAt = performance.now();
      const fence =
        options.replicaAcks > 0
          ? await this.attemptAcknowledged(name, keys, token, options, canWait, allNames)
          : await this.attempt(name, keys, token, options, canWait, pollMs);
      if (fence > 0) return { part: { name, keys, token, fence }, sentAt, wokenBy };
      const roundTrip = performance.now() - sentAt;
      queued ||= canWait;
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        if (queued) await this.leave(name, keys, token);
        throw new LockNotAcquiredError(messages.lockBusy(allNames, options.waitMs), allNames);
      }
      // Subscribed only now that a wait begins: a hand-off published before
      // the subscription took hold was missed, so try once more first.
      if (!(await hear.listen(listeningBefore))) continue;
      if (wokenBy === 'first-try') {
        channels.lockWait.publish(() => ({ keys: allNames, mode: options.scriptMode }));
      }
      const signal = signalForWait();
      const wake = await this.listener.wait(token, Math.min(remaining, pollMs), signal);
      if (wake.reason === 'granted') {
        // Handed over by a release: the lease began before the message
        // arrived, by about a one-way trip, bounded by the last round trip.
        const part = { name, keys, token, fence: wake.fence };
        if (options.replicaAcks > 0) await this.confirmHandOff(part, options, allNames);
        return { part, sentAt: performance.now() - roundTrip, wokenBy: 'release' };
      }
      if (wake.reason === 'aborted') {
        await this.leave(name, keys, token);
        const cause: unknown = signal.reason;
        throw new LockNotAcquiredError(
          this.closing ? messages.lockShuttingDown : messages.lockWaitAborted(allNames),
          allNames,
          { cause },
        );
      }
      wokenBy = wake.reason;
    }
  }

  private async attempt(
    name: string,
    keys: LockRedisKeys,
    token: string,
    options: Resolved,
    enqueue: boolean,
    pollMs: number,
    connection?: TxConnection,
  ): Promise<number> {
    try {
      return await this.script(
        'nestjsRedisTxLockAcquire',
        name,
        [
          ...scriptKeys(keys),
          this.slotKeys.fence(keys),
          token,
          options.ttlMs,
          options.scriptMode,
          options.permits,
          enqueue ? 1 : 0,
          pollMs * 3,
          ...this.publishArgs(keys),
        ],
        connection,
      );
    } catch (error) {
      // Redis answered with an error: nothing was taken, nothing to release.
      if (isLockRefusal(error)) throw error;
      // The reply was lost: the lock may be ours. Release it by token once
      // the connection is back, so that no key is stranded until its lease ends.
      void this.releasePart({ name, keys, token, fence: 0 }, options.scriptMode).catch(() => false);
      throw new LockNotAcquiredError(messages.lockAcquireUnknown(name), [name], { cause: error });
    }
  }

  /** An attempt whose lock, once taken, replicas must acknowledge (see ReplicaAcks). */
  private attemptAcknowledged(
    name: string,
    keys: LockRedisKeys,
    token: string,
    options: Resolved,
    enqueue: boolean,
    allNames: readonly string[],
  ): Promise<number> {
    return this.replicaAcks.confirm(name, allNames, options, {
      write: (connection) =>
        this.attempt(name, keys, token, options, enqueue, this.defaults.pollMs, connection),
      holds: (fence) => fence > 0,
      release: () => this.releasePart({ name, keys, token, fence: 0 }, options.scriptMode),
    });
  }

  /** A lock handed over by someone else's release: renewed here, so this connection has a write to WAIT for. */
  private confirmHandOff(
    part: HeldPart,
    options: Resolved,
    allNames: readonly string[],
  ): Promise<void> {
    const args = [...scriptKeys(part.keys).slice(0, 3), part.token, options.scriptMode];
    return this.replicaAcks.confirmHandOff(part.name, allNames, options, {
      write: async (connection) =>
        (await this.script(
          'nestjsRedisTxLockExtend',
          part.name,
          [...args, options.ttlMs],
          connection,
        )) === 1,
      holds: (renewed) => renewed,
      release: () => this.releasePart(part, options.scriptMode),
    });
  }

  private async leave(name: string, keys: LockRedisKeys, token: string): Promise<void> {
    await this.script('nestjsRedisTxLockLeave', name, [
      keys.writer,
      keys.readers,
      keys.queue,
      keys.waiterLeases,
      this.slotKeys.fence(keys),
      token,
      ...this.publishArgs(keys),
    ]).catch(
      () => 0, // the waiter's own lease takes it out of the line
    );
  }

  private async releasePart(part: HeldPart, mode: ScriptMode): Promise<boolean> {
    if (this.redlock.enabled) return this.redlock.release(part);
    const released = await this.script('nestjsRedisTxLockRelease', part.name, [
      ...scriptKeys(part.keys),
      this.slotKeys.fence(part.keys),
      part.token,
      mode,
      ...this.publishArgs(part.keys),
    ]);
    return released === 1;
  }

  /** Where a script announces a hand-off, and with which command: SPUBLISH keeps it on the lock's shard. */
  private publishArgs(keys: LockRedisKeys): [channel: string, command: 'SPUBLISH' | 'PUBLISH'] {
    return [this.slotKeys.channel(keys), this.slotKeys.sharded ? 'SPUBLISH' : 'PUBLISH'];
  }

  /**
   * Runs a lock script on the module's own connection, which never resends a
   * command whose reply was lost; a lost reply fails here, and callers decide.
   */
  private async script(
    command: keyof LockScriptCommands,
    name: string,
    args: (string | number)[],
    on?: TxConnection,
  ): Promise<number> {
    const connection = on ?? this.connections.locks;
    try {
      await connection.whenReady(this.readyTimeoutMs, `lock "${name}"`);
    } catch (error) {
      throw new RedisTxError(messages.lockConnectionFailed(name), { cause: error });
    }
    const scripts = connection.redis as unknown as LockScriptCommands;
    const reply = scripts[command](...args).catch((error: unknown) => {
      throw lockRefusal(error, name, this.defaults.keyPrefix) ?? lockConnectionLost(error, name);
    });
    return connection.unlessLost(
      reply,
      () => new RedisTxError(messages.lockConnectionFailed(name)),
    );
  }
}

/** The hand-off channel of one lock, subscribed on demand. */
interface HandOffs {
  /** The subscription in place now, if any. */
  established(): Subscription | undefined;
  /** Subscribes (once); true when `before` was that same subscription, so nothing was missed since. */
  listen(before: Subscription | undefined): Promise<boolean>;
}

const noHandOffs: HandOffs = { established: () => undefined, listen: async () => true };

/** A script refused unsent, or cut off, by a connection that went away (a failover): typed, not ioredis's raw error. */
function lockConnectionLost(error: unknown, name: string): unknown {
  if (!isConnectionLostError(error)) return error;
  return new RedisTxError(messages.lockConnectionFailed(name), { cause: error });
}

function scriptKeys(keys: LockRedisKeys): string[] {
  return [keys.writer, keys.readers, keys.permits, keys.queue, keys.waiterLeases];
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
    throw new LockNotAcquiredError(messages.lockUpgrade(name), [name]);
  }
  return undefined;
}

function lockParts(lock: Lock): [string, HeldLock][] {
  const locks = lock instanceof ReentrantLock ? lock.locks : [lock as HeldLock];
  return locks.flatMap((held) =>
    held.parts.map((part): [string, HeldLock] => [`${held.scriptMode}:${part.name}`, held]),
  );
}
