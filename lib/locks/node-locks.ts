import { Inject, Injectable } from '@nestjs/common';
import { ReplyError } from 'ioredis';
import { clusterRedirect } from '../connection/cluster-redirect.js';
import { isCluster } from '../connection/cluster-slots.js';
import { isConnectionLostError, isReplyLostError } from '../connection/redis-client.js';
import { RedisConnections } from '../connection/redis-connections.js';
import type { TxConnection } from '../connection/tx-connection.js';
import { channels } from '../diagnostics/redis-tx.channels.js';
import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import type { LockLossReason } from '../errors/lock-lost.error.js';
import { isLockRefusal, lockRefusal } from '../errors/lock-refusal.js';
import { RedisTxError } from '../errors/redis-tx.error.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import { ackConnections } from './ack-connections.js';
import { ContentionMemory } from './contention-memory.js';
import type { ForceReleaseResult, LockInspection } from './admin/lock-inspection.js';
import { holderToken, newApplicationId } from './admin/holder-token.js';
import { NodeLockAdmin } from './admin/node-lock-admin.js';
import { modeName, type HeldPart, type ScriptMode } from './held-lock.js';
import { lockRedisKeys, type LockRedisKeys } from './lock-keys.js';
import { handOffChannel, lockSlotKeys, type LockSlotKeys } from './lock-slot-keys.js';
import type { AcquiredPart, LockStore, PartRequest, WokenBy } from './lock-store.js';
import { leaseEndsAt } from './lease-validity.js';
import { type LockScriptCommands, type LockScriptReply } from './lock.scripts.js';
import { lockScriptSenders } from './lock-script-sender.js';
import { ReleaseListener, type Subscription } from './release-listener.js';
import { ReplicaAcks } from './replica-acks.js';

/**
 * Locks on the module's own Redis (one node, through Sentinel, or a Cluster):
 * Lua scripts on a connection that never resends a command whose reply was
 * lost, a fair line of waiters kept in Redis, and hand-off inside the release
 * script, announced on the lock's channel.
 */
@Injectable()
export class NodeLocks implements LockStore {
  private readonly listener: ReleaseListener;
  private readonly defaults: ResolvedRedisTxOptions['locks'];
  private readonly slotKeys: LockSlotKeys;
  private readonly readyTimeoutMs: number;
  private readonly replicaAcks: ReplicaAcks;
  private readonly cluster: boolean;
  private readonly admin: NodeLockAdmin;
  private readonly recentKeys = new Map<string, LockRedisKeys>();
  /** Names this application in its waiters' tokens, so that their hand-offs come to its channel alone. */
  private readonly application = newApplicationId();
  private readonly contention = new ContentionMemory();

  constructor(
    private readonly connections: RedisConnections,
    @Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions,
  ) {
    this.defaults = options.locks;
    this.cluster = isCluster(connections.shared);
    this.slotKeys = lockSlotKeys(options.locks.keyPrefix, this.cluster);
    this.readyTimeoutMs = options.transactions.readyTimeoutMs;
    this.listener = new ReleaseListener(connections, this.slotKeys.sharded);
    this.replicaAcks = new ReplicaAcks(ackConnections(connections));
    this.admin = new NodeLockAdmin(
      connections,
      options.locks.keyPrefix,
      this.slotKeys,
      this.readyTimeoutMs,
    );
  }

  /** Every term works here: on a Cluster, replicaAcks runs WAIT on a connection pinned to the lock's master. */
  refuseUnsupported(): void {}

  async acquirePart(name: string, request: PartRequest): Promise<AcquiredPart> {
    const keys = this.keysOf(name);
    // The suffix tells the release script what this waiter wants, so it can hand the lock over.
    const token = holderToken(request.mode, request.ttlMs, request.permits, this.application);
    const tryLock = request.deadline <= performance.now();
    if (this.mayBeFree(name, request)) {
      const sentAt = performance.now();
      const fence = await this.attemptIfFree(name, keys, token, request);
      if (fence > 0) return { part: { name, keys, token, fence }, sentAt, wokenBy: 'first-try' };
      this.contention.seen(name);
      if (fence === 0 && tryLock) throw busy(request, 'busy');
      // Readers or a line: the full script decides, and puts this one in line.
    }
    // A try-lock never waits, so it never needs to hear a hand-off.
    if (tryLock) {
      return this.acquireListening(name, keys, token, request, noHandOffs);
    }
    const handOffs = new HandOffChannel(
      this.listener,
      handOffChannel(this.slotKeys.channelBase(keys), this.application),
    );
    const stopKeeping = this.listener.keepFor(token);
    try {
      return await this.acquireListening(name, keys, token, request, handOffs);
    } finally {
      stopKeeping();
      handOffs.stop();
    }
  }

  async extend(part: HeldPart, mode: ScriptMode, ttlMs: number): Promise<boolean> {
    const renewed = await this.script('nestjsRedisTxLockExtend', part.name, [
      ...scriptKeys(part.keys).slice(0, 3),
      part.token,
      mode,
      ttlMs,
    ]);
    return renewed === 1;
  }

  /** Whether anyone holds the lock now (any mode). */
  async isLocked(name: string): Promise<boolean> {
    const keys = this.keysOf(name);
    return (
      (await this.script('nestjsRedisTxLockIsLocked', name, [
        keys.writer,
        keys.readers,
        keys.permits,
      ])) === 1
    );
  }

  leaseEndsAt(sentAt: number, ttlMs: number): number {
    return leaseEndsAt(sentAt, ttlMs);
  }

  /**
   * The Redis keys of a lock name, remembered for the names used lately: a
   * name is usually locked again and again, and its five keys (and, on a
   * Cluster, its slot) are the same every time. Never mutated once made.
   */
  private keysOf(name: string): LockRedisKeys {
    let keys = this.recentKeys.get(name);
    if (!keys) {
      if (this.recentKeys.size >= RECENT_KEYS_KEPT) this.recentKeys.clear();
      keys = lockRedisKeys(this.defaults.keyPrefix, name);
      this.recentKeys.set(name, keys);
    }
    return keys;
  }

  /** Nothing to watch: a loss is found by renewal or by the lease running out. */
  held(): void {}

  inspect(name: string): Promise<LockInspection> {
    return this.admin.inspect(name);
  }

  forceRelease(name: string): Promise<ForceReleaseResult> {
    return this.admin.forceRelease(name);
  }

  lossReason(part: HeldPart): Promise<LockLossReason> {
    return this.admin.lossReason(part);
  }

  private async acquireListening(
    name: string,
    keys: LockRedisKeys,
    token: string,
    options: PartRequest,
    hear: HandOffs,
  ): Promise<AcquiredPart> {
    const { deadline, allNames } = options;
    const canWait = deadline > performance.now();
    const { pollMs } = this.defaults;
    let wokenBy: WokenBy = 'first-try';
    let queued = false;
    for (;;) {
      const listeningBefore = hear.established();
      const sentAt = performance.now();
      const fence =
        options.replicaAcks > 0
          ? await this.attemptAcknowledged(name, keys, token, options, canWait, allNames)
          : await this.attempt(name, keys, token, options, canWait, pollMs);
      if (fence > 0) return { part: { name, keys, token, fence }, sentAt, wokenBy };
      queued ||= canWait;
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        if (queued) await this.leave(name, keys, token);
        throw busy(options, canWait ? 'timeout' : 'busy');
      }
      // Subscribed only now that a wait begins: a hand-off published before
      // the subscription took hold was missed, so try once more first.
      if (!(await this.listen(hear, listeningBefore, name, keys, token, allNames))) continue;
      this.contention.seen(name);
      if (wokenBy === 'first-try') {
        channels.lockWait.publish(() => ({ keys: allNames, mode: modeName(options.mode) }));
      }
      const cancel = options.cancelForWait();
      const wake = await this.listener.wait(token, Math.min(remaining, pollMs), cancel);
      if (wake.reason === 'granted') {
        wokenBy = 'release';
        // Handed over by a release, at a moment this process cannot know:
        // the message may have been slow, or this process paused. But the
        // release set the lease after the attempt just made had run (that
        // attempt found the lock not yet ours), so the lease began after
        // that attempt was sent: counted from there, it ends no later here
        // than in Redis, and the lock is held without another round trip.
        if (
          options.replicaAcks === 0 &&
          this.leaseEndsAt(sentAt, options.ttlMs) > performance.now()
        ) {
          return { part: { name, keys, token, fence: wake.fence }, sentAt, wokenBy };
        }
        // Too late for that count, or replicas must acknowledge this
        // connection's own write: the next attempt finds the lock in this
        // token's name and renews its lease, which counts from that send.
        continue;
      }
      if (wake.reason === 'aborted') {
        await this.leave(name, keys, token);
        const cause: unknown = cancel.reason;
        throw new LockNotAcquiredError(
          options.closing() ? messages.lockShuttingDown : messages.lockWaitAborted(allNames),
          allNames,
          { reason: options.closing() ? 'shutdown' : 'aborted', cause },
        );
      }
      wokenBy = wake.reason;
    }
  }

  /** Subscribes for hand-offs; a refusal (an ACL without the channel) takes the waiter out of the line, typed. */
  private async listen(
    hear: HandOffs,
    before: Subscription | undefined,
    name: string,
    keys: LockRedisKeys,
    token: string,
    allNames: readonly string[],
  ): Promise<boolean> {
    try {
      return await hear.listen(before);
    } catch (error) {
      await this.leave(name, keys, token);
      throw (
        lockRefusal(error, name, this.defaults.keyPrefix) ??
        new LockNotAcquiredError(messages.lockUnreachable(allNames), allNames, {
          reason: 'connection',
          cause: error,
        })
      );
    }
  }

  private attempt(
    name: string,
    keys: LockRedisKeys,
    token: string,
    options: PartRequest,
    enqueue: boolean,
    pollMs: number,
    connection?: TxConnection,
  ): Promise<number> {
    return this.sendAttempt(
      'nestjsRedisTxLockAcquire',
      { name, keys, token, fence: 0 },
      options,
      [
        // Written out rather than spread from helpers: this runs on every acquisition.
        keys.writer,
        keys.readers,
        keys.permits,
        keys.queue,
        keys.waiterLeases,
        this.slotKeys.fence(keys),
        token,
        options.ttlMs,
        options.mode,
        options.permits,
        enqueue ? 1 : 0,
        pollMs * 3,
        this.slotKeys.channelBase(keys),
        this.publishCommand,
      ],
      connection,
    );
  }

  /**
   * Whether to try the short script first: a write lock (the full script
   * serves readers, semaphores and replica acknowledgements) on a name this
   * process has not found contended lately.
   */
  private mayBeFree(name: string, request: PartRequest): boolean {
    return request.mode === 'w' && request.replicaAcks === 0 && !this.contention.recent(name);
  }

  /** The short acquire (see acquireIfFree): a fencing token, 0 when a writer holds the lock, -1 when the full script must decide. */
  private attemptIfFree(
    name: string,
    keys: LockRedisKeys,
    token: string,
    options: PartRequest,
  ): Promise<number> {
    return this.sendAttempt(
      'nestjsRedisTxLockAcquireIfFree',
      { name, keys, token, fence: 0 },
      options,
      [keys.writer, keys.readers, keys.queue, this.slotKeys.fence(keys), token, options.ttlMs],
    );
  }

  /** Sends an acquire script; whatever it may have taken is released by token when its outcome is unknown. */
  private async sendAttempt(
    command: 'nestjsRedisTxLockAcquire' | 'nestjsRedisTxLockAcquireIfFree',
    part: HeldPart,
    options: PartRequest,
    args: (string | number)[],
    connection?: TxConnection,
  ): Promise<number> {
    try {
      const fence = await this.script(
        command,
        part.name,
        args,
        connection,
        new AcquisitionFailures(this, part, options),
      );
      return fence as number;
    } catch (error) {
      // Redis answered with an error (nothing was taken), or the failure is
      // typed already (nothing sent; or sent, lost, and being released).
      if (isLockRefusal(error) || error instanceof LockNotAcquiredError) throw error;
      // Anything else: the lock may be ours. Release it by token once the
      // connection is back, so that no key is stranded until its lease ends.
      this.releaseByToken(part, options.mode);
      throw new LockNotAcquiredError(
        messages.lockAcquireUnknown(part.name, error),
        options.allNames,
        { reason: 'outcome-unknown', cause: error },
      );
    }
  }

  /** An attempt whose lock, once taken, replicas must acknowledge (see ReplicaAcks). */
  private attemptAcknowledged(
    name: string,
    keys: LockRedisKeys,
    token: string,
    options: PartRequest,
    enqueue: boolean,
    allNames: readonly string[],
  ): Promise<number> {
    return this.replicaAcks.confirm(name, allNames, options, {
      writerKey: keys.writer,
      write: (connection) =>
        this.attempt(name, keys, token, options, enqueue, this.defaults.pollMs, connection),
      holds: (fence) => fence > 0,
      release: () => this.release({ name, keys, token, fence: 0 }, options.mode),
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

  /** Lets go of whatever an attempt whose outcome is unknown may have taken, in the background. */
  releaseByToken(part: HeldPart, mode: ScriptMode): void {
    void this.release(part, mode).catch(() => false);
  }

  release(part: HeldPart, mode: ScriptMode): Promise<boolean> {
    if (mode !== 'w' || this.contention.recent(part.name))
      return this.releaseServingLine(part, mode);
    const { keys } = part;
    return this.script('nestjsRedisTxLockReleaseIfAlone', part.name, [
      keys.writer,
      keys.queue,
      part.token,
    ]).then((reply) => {
      if (reply !== -1) return reply === 1;
      // Someone came to wait while this was held: the full release hands over.
      this.contention.seen(part.name);
      return this.releaseServingLine(part, mode);
    });
  }

  /** The full release: lets go, and hands the lock to the next in line, or wakes it. */
  private releaseServingLine(part: HeldPart, mode: ScriptMode): Promise<boolean> {
    const { keys } = part;
    return this.script('nestjsRedisTxLockRelease', part.name, [
      keys.writer,
      keys.readers,
      keys.permits,
      keys.queue,
      keys.waiterLeases,
      this.slotKeys.fence(keys),
      part.token,
      mode,
      this.slotKeys.channelBase(keys),
      this.publishCommand,
      this.application,
    ]).then(this.released);
  }

  /** A release's reply: 1 or 0, or the hand-off message for a waiter here, delivered now rather than published. */
  private readonly released = (reply: LockScriptReply): boolean => {
    if (typeof reply === 'number') return reply === 1;
    this.listener.deliver(reply);
    return true;
  };

  /** Where a script announces a hand-off, and with which command: SPUBLISH keeps it on the lock's shard. */
  private publishArgs(keys: LockRedisKeys): [channel: string, command: 'SPUBLISH' | 'PUBLISH'] {
    return [this.slotKeys.channelBase(keys), this.publishCommand];
  }

  private get publishCommand(): 'SPUBLISH' | 'PUBLISH' {
    return this.slotKeys.sharded ? 'SPUBLISH' : 'PUBLISH';
  }

  /**
   * Runs a lock script on the module's own connection, which never resends a
   * command whose reply was lost; a lost reply fails here, and callers decide.
   */
  private script(
    command: keyof LockScriptCommands,
    name: string,
    args: (string | number)[],
    on?: TxConnection,
    failures?: ScriptFailures,
  ): Promise<LockScriptReply> {
    const connection = on ?? this.connections.locks;
    // Ready (the common case): sent at once, with no label made for a wait that does not happen.
    if (connection.isReady) return this.send(connection, command, name, args, failures);
    const notReady = connection.whenReady(this.readyTimeoutMs, `lock "${name}"`);
    if (!notReady) return this.send(connection, command, name, args, failures);
    return notReady.then(
      () => this.send(connection, command, name, args, failures),
      (error: unknown) => {
        throw (failures ?? workFailures(name)).unsent(error);
      },
    );
  }

  private send(
    connection: TxConnection,
    command: keyof LockScriptCommands,
    name: string,
    args: (string | number)[],
    failures: ScriptFailures | undefined,
  ): Promise<LockScriptReply> {
    return lockScriptSenders[command]
      .send(connection.redis, args, connection.coalesceWrites)
      .then(undefined, (error: unknown) => {
        throw this.failure(error, name, failures ?? workFailures(name));
      });
  }

  /** What a script's failure becomes: its reply lost with the connection, a refusal, or not sent at all. */
  private failure(error: unknown, name: string, failures: ScriptFailures): unknown {
    if (isReplyLostError(error)) return failures.lost(error);
    if (refusedForFailover(error)) {
      // A connection pinned to a master that lost the slot: the script did
      // not run there; have the next attempt ask the refreshed slot map.
      const redirect = clusterRedirect(error);
      if (redirect) this.connections.clusterWatch?.redirected(redirect);
      return failures.unsent(error);
    }
    return (
      lockRefusal(error, name, this.defaults.keyPrefix) ??
      // Refused unsent by a connection that was going away (a failover).
      (isConnectionLostError(error) ? failures.unsent(error) : error)
    );
  }
}

/** What a lock script's connection failures become: before anything was sent (or run), and once its reply is lost. */
interface ScriptFailures {
  unsent(cause: unknown): Error;
  lost(cause: unknown): Error;
}

/**
 * A node's refusal because it does not serve the slot now (MOVED, ASK,
 * TRYAGAIN, CLUSTERDOWN) or is a replica now (READONLY, MASTERDOWN): the
 * script did not run, so nothing was taken or changed.
 */
function refusedForFailover(error: unknown): boolean {
  return (
    clusterRedirect(error) !== undefined ||
    (error instanceof ReplyError && /^(READONLY|MASTERDOWN)\b/.test((error as Error).message))
  );
}

/** Releases, renewals and checks of a held lock: the outcome of that command is unknown. */
function workFailures(name: string): ScriptFailures {
  const failed = (cause?: unknown) =>
    new RedisTxError(messages.lockConnectionFailed(name), { cause });
  return { unsent: failed, lost: failed };
}

/**
 * An acquisition: nothing sent is a refusal for `connection` (nothing was
 * taken); a lost reply is `outcome-unknown`, and whatever the script took is
 * released by token. One object per attempt, its messages made only on a failure.
 */
class AcquisitionFailures implements ScriptFailures {
  constructor(
    private readonly locks: NodeLocks,
    private readonly part: HeldPart,
    private readonly request: PartRequest,
  ) {}

  unsent(cause: unknown): Error {
    const keys = this.request.allNames;
    const message = refusedForFailover(cause)
      ? messages.lockRefusedForFailover(keys, (cause as Error).message)
      : messages.lockUnreachable(keys);
    return new LockNotAcquiredError(message, keys, { reason: 'connection', cause });
  }

  lost(cause: unknown): Error {
    this.locks.releaseByToken(this.part, this.request.mode);
    return new LockNotAcquiredError(
      messages.lockAcquireUnknown(this.part.name, cause),
      this.request.allNames,
      { reason: 'outcome-unknown', cause },
    );
  }
}

/** The refusal of a lock that stayed busy: at once for a try-lock, or once the wait ran out. */
function busy(request: PartRequest, reason: 'busy' | 'timeout'): LockNotAcquiredError {
  return new LockNotAcquiredError(
    messages.lockBusy(request.allNames, request.waitMs),
    request.allNames,
    { reason },
  );
}

/** The hand-off channel of one lock, subscribed on demand. */
interface HandOffs {
  /** The subscription in place now, if any. */
  established(): Subscription | undefined;
  /** Subscribes (once); true when `before` was that same subscription, so nothing was missed since. */
  listen(before: Subscription | undefined): Promise<boolean>;
}

/** Subscribes to the channel only once a wait begins (a lock found free subscribes to nothing), and lets go when done. */
class HandOffChannel implements HandOffs {
  private release?: () => void;

  constructor(
    private readonly listener: ReleaseListener,
    private readonly channel: string,
  ) {}

  established(): Subscription | undefined {
    return this.listener.established(this.channel);
  }

  async listen(before: Subscription | undefined): Promise<boolean> {
    if (this.release) return true;
    const held = await this.listener.hold(this.channel);
    this.release = held.stop;
    return held.subscription === before;
  }

  stop(): void {
    this.release?.();
  }
}

const noHandOffs: HandOffs = { established: () => undefined, listen: async () => true };

/** How many lock names keep their keys made (see keysOf): a few hundred kilobytes at most. */
const RECENT_KEYS_KEPT = 4096;

function scriptKeys(keys: LockRedisKeys): string[] {
  return [keys.writer, keys.readers, keys.permits, keys.queue, keys.waiterLeases];
}
