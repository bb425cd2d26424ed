import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { ReplyError } from 'ioredis';
import { RedisConnections } from '../connection/redis-connections.js';
import {
  execFailure,
  type ExecReply,
  type QueuedCommand,
  type TxConnection,
} from '../connection/tx-connection.js';
import { clusterRedirect, lostBeforeExec } from '../connection/cluster-redirect.js';
import { isConnectionLostError } from '../connection/redis-client.js';
import { channels } from '../diagnostics/redis-tx.channels.js';
import { tracing } from '../diagnostics/redis-tx.tracing.js';
import { traceTransaction } from '../diagnostics/transaction.tracing.js';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { LockLostError } from '../errors/lock-lost.error.js';
import { NoActiveTransactionError } from '../errors/no-active-transaction.error.js';
import { ShuttingDownError } from '../errors/shutting-down.error.js';
import { TransactionConflictError } from '../errors/transaction-conflict.error.js';
import { TransactionExecError, type CommandReply } from '../errors/transaction-exec.error.js';
import { TransactionPropagationError } from '../errors/transaction-propagation.error.js';
import { LockService } from '../locks/lock.service.js';
import { settleWithin } from '../locks/settle-within.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import { backoffDelay } from './backoff.js';
import { commandRecorder } from './command-queue.js';
import { TransactionContext } from './transaction.context.js';
import { asResult, type Shape } from './transaction-shape.js';
import type { TransactionOptions, TransactionResult } from './transaction.options.js';
import { resolveWatchKeys } from './transaction-options.validator.js';

type Committed<T> = {
  kind: 'committed';
  context: TransactionContext;
  value: T;
  replies: unknown[];
};

/** How one attempt ended. `failed` means something may have been applied, so no hook of either kind runs. */
type AttemptOutcome<T> =
  | Committed<T>
  /** `lostWatch` says why, when the WATCH was lost (a failover, a dropped connection) rather than a key changed. */
  | { kind: 'conflict'; context: TransactionContext; lostWatch?: string }
  | { kind: 'rolled-back'; context: TransactionContext; error: unknown }
  | { kind: 'failed'; context: TransactionContext; error: unknown };

/** What `conclude` returns for a conflicted attempt that has attempts left. */
const retry = Symbol('retry');
const noWatch: readonly string[] = Object.freeze([]);

/**
 * The one implementation of a transaction. `@Transactional` and `RedisTx.run`
 * are thin layers over `execute`; the active transaction of each async call
 * chain lives in this instance's AsyncLocalStorage.
 */
@Injectable()
export class TransactionRunner implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('RedisTx');
  private readonly storage = new AsyncLocalStorage<TransactionContext>();
  /**
   * How many outermost transactions are running now; shutdown lets them
   * finish before connections close. A count, kept by `begin` itself, costs
   * a transaction no promise of its own, as tracking each promise would.
   */
  private running = 0;
  /** Set while shutdown waits: called when the last running transaction ends. */
  private drained?: () => void;
  private closing = false;

  /** The prototype of every transaction's `RedisTx.multi`, built once. */
  private readonly recorder: object;
  /** Registered scripts go out as EVAL inside MULTI; without any, commands go as queued. */
  private readonly prepareForExec: (commands: QueuedCommand[]) => QueuedCommand[];

  constructor(
    private readonly connections: RedisConnections,
    @Inject(REDIS_TX_OPTIONS) private readonly options: ResolvedRedisTxOptions,
    private readonly locks: LockService,
  ) {
    this.recorder = commandRecorder(connections.commandNames);
    this.prepareForExec =
      Object.keys(options.scripts).length > 0
        ? (commands) => commands.map(connections.forTransaction)
        : (commands) => commands;
  }

  /** The transaction of this call chain, unless its method has already returned. */
  get current(): TransactionContext | undefined {
    const context = this.storage.getStore();
    return context?.ended ? undefined : context;
  }

  requireCurrent(what: string): TransactionContext {
    const context = this.storage.getStore();
    if (!context) throw new NoActiveTransactionError(messages.noActiveTransaction(what));
    if (context.ended) throw new NoActiveTransactionError(messages.transactionEnded(what));
    return context;
  }

  /**
   * Not an async function: a transaction's own promise is the one returned,
   * without the extra turns an async wrapper would add to every call.
   */
  execute<T>(
    fn: () => T | Promise<T>,
    options: TransactionOptions,
    args: readonly unknown[],
    label: string,
  ): Promise<TransactionResult<T>>;
  /**
   * `shape` makes what the returned promise resolves to (`@Transactional`
   * wants only the value), so no further promise is chained to reshape it.
   */
  execute<T, R>(
    fn: () => T | Promise<T>,
    options: TransactionOptions,
    args: readonly unknown[],
    label: string,
    shape: Shape<T, R>,
  ): Promise<R>;
  execute<T, R>(
    fn: () => T | Promise<T>,
    options: TransactionOptions,
    args: readonly unknown[],
    label: string,
    shape: Shape<T, R> = asResult as Shape<T, R>,
  ): Promise<R> {
    try {
      const active = this.current;
      const watchKeys = resolveWatchKeys(options.watch, args, label);
      switch (options.propagation ?? 'required') {
        case 'never':
          if (active) throw new TransactionPropagationError(messages.neverInsideTransaction(label));
          return this.outside(fn, shape);
        case 'mandatory':
          if (!active)
            throw new NoActiveTransactionError(messages.mandatoryWithoutTransaction(label));
          return this.join(active, fn, watchKeys, label, shape);
        case 'required':
          if (active) return this.join(active, fn, watchKeys, label, shape);
          return this.beginTracked(fn, watchKeys, options, label, shape);
        case 'requires_new':
          return this.beginTracked(fn, watchKeys, options, label, shape);
      }
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /**
   * Shutdown: new transactions are refused from now on, except those started
   * by a lock holder's body that shutdown is waiting for, and those already
   * running get up to `shutdownTimeoutMs` to finish, so that connections
   * close under none of them. One still running then meets the closing
   * connections: it fails unsent, or as outcome unknown if its EXEC was on
   * the wire.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    if (this.running === 0) return;
    const drained = new Promise<void>((resolve) => (this.drained = resolve));
    await settleWithin([drained], this.options.shutdownTimeoutMs);
  }

  /**
   * Once the application is closed, its AsyncLocalStorage leaves Node's list
   * of live storages. Node propagates every storage on that list to every
   * promise the process makes, so each closed application left behind made
   * every promise slower: after 60 applications had come and gone, a raw
   * ioredis transaction cost almost four times its CPU.
   */
  onApplicationShutdown(): void {
    this.storage.disable();
  }

  /** An outermost transaction: refused once shutdown has begun, and waited for by shutdown otherwise. */
  private beginTracked<T, R>(
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    options: TransactionOptions,
    label: string,
    shape: Shape<T, R>,
  ): Promise<R> {
    // A lock holder that shutdown lets finish may still write what it holds the lock for.
    if (this.closing && !this.locks.inHoldingBody()) {
      return Promise.reject(new ShuttingDownError(messages.shuttingDown(label)));
    }
    if (!tracing.transaction.hasSubscribers) {
      return this.begin(fn, watchKeys, options.retries, label, shape);
    }
    // The trace reads the attempts off the full result; reshape after it.
    const traced = traceTransaction(options.traceName ?? label, watchKeys.length > 0, () =>
      this.begin(fn, watchKeys, options.retries, label, asResult),
    );
    return shape === asResult
      ? (traced as Promise<R>)
      : traced.then((result) => shape(result.value, result.replies, result.attempts));
  }

  private async outside<T, R>(fn: () => T | Promise<T>, shape: Shape<T, R>): Promise<R> {
    return shape(await fn(), undefined, 0);
  }

  private async join<T, R>(
    context: TransactionContext,
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    label: string,
    shape: Shape<T, R>,
  ): Promise<R> {
    if (watchKeys.length > 0) {
      if (!context.watch) throw new TransactionPropagationError(messages.watchCannotJoin(label));
      const { connection } = context.watch;
      // On a Cluster, the joined keys must live in the slot the connection is pinned to.
      this.connections.slotOf(label, [...this.connections.watchedOn(connection), ...watchKeys]);
      await connection.redis.watch(...watchKeys);
    }
    const savepoint = context.savepoint();
    try {
      return shape(await fn(), undefined, 0);
    } catch (error) {
      context.rollbackTo(savepoint, error);
      throw error;
    }
  }

  /** Counted in `running` from its first (synchronous) step until it settles (see `ended`). */
  private begin<T, R>(
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    retries: number | undefined,
    label: string,
    shape: Shape<T, R>,
  ): Promise<R> {
    this.running++;
    // Without WATCH nothing can conflict, so there is nothing to retry.
    if (watchKeys.length === 0) return this.runOnce(fn, label, shape);
    return this.runWatched(
      fn,
      watchKeys,
      1 + (retries ?? this.options.transactions.retries),
      label,
      shape,
    );
  }

  /** The transaction has settled: shutdown may go on once none is left. */
  private ended(): void {
    if (--this.running === 0) this.drained?.();
  }

  private publishStart(label: string, attempt: number, watch: readonly string[]): void {
    if (channels.transactionStart.hasSubscribers) {
      channels.transactionStart.publish(() => ({ label, attempt, watch }));
    }
  }

  /**
   * A transaction without WATCH: one attempt, on the shared transaction
   * connection. Not an async function: when the method returns no promise,
   * the transaction's promise is EXEC's reply mapped by one `then`, with no
   * promise or turn of its own besides.
   */
  private runOnce<T, R>(fn: () => T | Promise<T>, label: string, shape: Shape<T, R>): Promise<R> {
    try {
      return this.sendOnce(fn, label, shape);
    } catch (error) {
      // Thrown before the attempt had an outcome to end with: not counted as running any more.
      this.ended();
      return Promise.reject(error as Error);
    }
  }

  private sendOnce<T, R>(fn: () => T | Promise<T>, label: string, shape: Shape<T, R>): Promise<R> {
    const started = performance.now();
    this.publishStart(label, 1, noWatch);
    const context = this.newContext(label, this.connections.shared);
    let returned: T | Promise<T>;
    try {
      returned = this.storage.run(context, fn);
    } catch (error) {
      context.end();
      return this.endOnceLater({ kind: 'rolled-back', context, error }, started, shape);
    }
    if (isThenable(returned)) return this.execAfter(context, returned, started, shape);
    context.end();
    const value = returned;
    const sent = this.exec(context, this.connections.transactions, 1, value);
    if (!isSent(sent)) return this.endOnceLater(sent, started, shape);
    return sent.then(
      (reply) => this.endOnce(execOutcome(context, value, reply), started, shape),
      (error: unknown) => this.endOnce(execFailed<T>(context, error), started, shape),
    );
  }

  /** `runOnce` for a method that returned a promise: EXEC goes once it has resolved. */
  private async execAfter<T, R>(
    context: TransactionContext,
    returned: PromiseLike<T>,
    started: number,
    shape: Shape<T, R>,
  ): Promise<R> {
    let value: T;
    try {
      value = await returned;
    } catch (error) {
      context.end();
      return this.endOnce({ kind: 'rolled-back', context, error }, started, shape);
    }
    context.end();
    const sent = this.exec(context, this.connections.transactions, 1, value);
    let outcome: AttemptOutcome<T>;
    if (!isSent(sent)) outcome = sent;
    else {
      // Awaited here rather than chained on: an await costs less than a `then` and its closures.
      try {
        outcome = execOutcome(context, value, await sent);
      } catch (error) {
        outcome = execFailed(context, error);
      }
    }
    return this.endOnce(outcome, started, shape);
  }

  /**
   * What a transaction of one attempt settles with: its value at once when it
   * committed and no hook is to run (or the error, thrown), otherwise a
   * promise that runs the hooks first. Either way `running` counts it no more.
   */
  private endOnce<T, R>(
    outcome: AttemptOutcome<T>,
    started: number,
    shape: Shape<T, R>,
  ): R | Promise<R> {
    let ending: R | Promise<R> | typeof retry;
    try {
      ending = this.conclude(outcome, 1, 1, started, started, shape);
    } catch (error) {
      this.ended();
      throw error;
    }
    // A single attempt is never retried: a conflict on it is final (see `conclude`).
    if (ending instanceof Promise) return ending.finally(() => this.ended());
    this.ended();
    return ending as R;
  }

  /** `endOnce` as a promise, for an attempt settled before anything was awaited. */
  private endOnceLater<T, R>(
    outcome: AttemptOutcome<T>,
    started: number,
    shape: Shape<T, R>,
  ): Promise<R> {
    try {
      return Promise.resolve(this.endOnce(outcome, started, shape));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** A WATCH transaction: attempts until one does not conflict, or `attempts` have. */
  private async runWatched<T, R>(
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    attempts: number,
    label: string,
    shape: Shape<T, R>,
  ): Promise<R> {
    try {
      const { backoff } = this.options.transactions;
      const started = performance.now();
      for (let attempt = 1; ; attempt++) {
        const attemptStarted = performance.now();
        this.publishStart(label, attempt, watchKeys);
        const outcome = await this.attemptWatched(fn, watchKeys, label, attempt);
        const ending = this.conclude(outcome, attempt, attempts, started, attemptStarted, shape);
        if (ending !== retry) return await ending;
        // The conflicted attempt's hooks are dropped with it.
        const delayMs = backoffDelay(attempt, backoff.initialMs, backoff.maxMs);
        channels.transactionRetry.publish(() => ({ label, attempt, delayMs }));
        await delay(delayMs);
      }
    } finally {
      this.ended();
    }
  }

  /**
   * What the transaction settles with after this attempt: the shaped value
   * (at once when no commit hook is to run), a rejection once the rollback
   * hooks have run, a thrown error when something may have been applied, or
   * `retry` for a conflict with attempts left.
   */
  private conclude<T, R>(
    outcome: AttemptOutcome<T>,
    attempt: number,
    attempts: number,
    started: number,
    attemptStarted: number,
    shape: Shape<T, R>,
  ): R | Promise<R> | typeof retry {
    const { context } = outcome;
    const { label } = context;
    switch (outcome.kind) {
      case 'committed':
        if (channels.transactionCommit.hasSubscribers) {
          channels.transactionCommit.publish(() => ({
            label,
            attempts: attempt,
            commands: outcome.replies.length,
            durationMs: performance.now() - started,
          }));
        }
        if (context.commitHooks.length > 0 || context.droppedWork.length > 0) {
          return this.afterCommit(outcome, attempt, shape);
        }
        return shape(outcome.value, outcome.replies, attempt);
      case 'rolled-back':
        return this.rolledBack(context, outcome.error, attempt, started);
      case 'failed':
        throw outcome.error;
      case 'conflict': {
        channels.transactionConflict.publish(() => ({
          label,
          attempt,
          durationMs: performance.now() - attemptStarted,
        }));
        if (attempt < attempts) return retry;
        const message =
          outcome.lostWatch === undefined
            ? messages.conflict(label, attempt)
            : messages.conflictLostWatch(label, attempt, outcome.lostWatch);
        return this.rolledBack(
          context,
          new TransactionConflictError(message, attempt),
          attempt,
          started,
        );
      }
    }
  }

  private async afterCommit<T, R>(
    outcome: Committed<T>,
    attempt: number,
    shape: Shape<T, R>,
  ): Promise<R> {
    const { context, replies } = outcome;
    for (const hook of context.commitHooks) {
      await this.runHook('afterCommit', context.label, () => hook(replies));
    }
    if (context.droppedWork.length > 0) await this.runDroppedWorkHooks(context);
    return shape(outcome.value, replies, attempt);
  }

  /** Nothing was applied: the rollback hooks run, then the transaction fails with `error`. */
  private async rolledBack(
    context: TransactionContext,
    error: unknown,
    attempts: number,
    started: number,
  ): Promise<never> {
    await this.rollBack(context, error, attempts, started);
    throw error;
  }

  /**
   * One run on a pooled connection that holds the WATCH. The connection goes
   * back to the pool before any hook runs, so a hook may start a transaction
   * of its own.
   */
  private async attemptWatched<T>(
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    label: string,
    attempt: number,
  ): Promise<AttemptOutcome<T>> {
    // On a Cluster: a connection to the master of the watched keys' slot.
    const pinned = this.connections.clusterWatch
      ? await this.connections.pinnedWatch(watchKeys, label)
      : undefined;
    const connection = pinned?.connection ?? (await this.connections.watchPool.acquire());
    const giveBack = (reusable: boolean) =>
      pinned ? pinned.release(reusable) : this.connections.watchPool.release(connection, reusable);
    try {
      const notReady = connection.whenReady(this.options.transactions.readyTimeoutMs, label);
      if (notReady) await notReady;
      const generation = connection.generation;
      await connection.redis.watch(...watchKeys);
      const context = this.newContext(label, connection.redis, { connection, generation });
      const outcome = await this.runAndExec(context, connection, fn, attempt);
      const reusable = outcome.kind === 'failed' ? false : this.unwatchLeftover(context);
      giveBack(typeof reusable === 'boolean' ? reusable : await reusable);
      return pinned
        ? this.redirectedAsConflict(outcome, pinned.slot)
        : watchLostAsConflict(outcome);
    } catch (error) {
      // WATCH itself failed: the connection's state is unknown, nothing was queued.
      giveBack(false);
      const redirect =
        pinned && (clusterRedirect(error) ?? (lostBeforeExec(error) ? {} : undefined));
      if (redirect) this.connections.clusterWatch?.redirected(redirect);
      // Redis answered with an error (an ACL refusal): definite, and nothing ran.
      else if (error instanceof ReplyError) {
        const refusal = error as Error;
        throw new TransactionAbortedError(
          messages.watchRefused(label, refusal.message),
          [refusal],
          {
            cause: refusal,
          },
        );
      }
      // The connection dropped under WATCH (a failover): nothing ran yet, so run again.
      else if (!isConnectionLostError(error)) throw error;
      return {
        kind: 'conflict',
        context: this.newContext(label, connection.redis),
        lostWatch: reasonOf(error),
      };
    }
  }

  private async runAndExec<T>(
    context: TransactionContext,
    connection: TxConnection,
    fn: () => T | Promise<T>,
    attempt: number,
  ): Promise<AttemptOutcome<T>> {
    let value: T;
    try {
      const returned = this.storage.run(context, fn);
      // A callback that returns no promise costs no await (an await is a turn, and promise-hook work).
      value = isThenable(returned) ? await returned : returned;
    } catch (error) {
      return { kind: 'rolled-back', context, error };
    } finally {
      context.end();
    }
    const sent = this.exec(context, connection, attempt, value);
    if (!isSent(sent)) return sent;
    try {
      return execOutcome(context, value, await sent);
    } catch (error) {
      return execFailed(context, error);
    }
  }

  /**
   * After the method has returned: EXEC what it queued. Not an async
   * function: an attempt settled before sending (nothing queued, a lost
   * WATCH, a refusal) comes back as its outcome, without a promise; a sent
   * one as EXEC's reply, for the caller to await and map (execOutcome,
   * execFailed), so that no promise is chained on to map it.
   */
  private exec<T>(
    context: TransactionContext,
    connection: TxConnection,
    attempt: number,
    value: T,
  ): AttemptOutcome<T> | Promise<ExecReply> {
    const { commands } = context.queue;
    if (commands.length === 0) return { kind: 'committed', context, value, replies: [] };
    if (context.watch && connection.lostSince(context.watch.generation)) {
      // The connection dropped (or is dropping) after WATCH: the next one watches nothing.
      return { kind: 'conflict', context, lostWatch: messages.watchConnectionDropped };
    }
    try {
      // On a Cluster, keys of several slots are refused here, before anything is sent.
      if (this.connections.clusterWatch) {
        this.connections.slotOf(context.label, this.connections.watchedOn(connection), commands);
      }
      const notReady = connection.whenReady(
        this.options.transactions.readyTimeoutMs,
        context.label,
      );
      if (notReady) return notReady.then(() => this.sendExec(context, connection, attempt));
      return this.sendExec(context, connection, attempt);
    } catch (error) {
      return execRefused(context, error);
    }
  }

  /** Sends MULTI … EXEC on a ready connection; throws if it refuses to send. */
  private sendExec(
    context: TransactionContext,
    connection: TxConnection,
    attempt: number,
  ): Promise<ExecReply> {
    const { label } = context;
    const { commands } = context.queue;
    // Under @Locked: a lock whose lease may have ended (this process was
    // paused, or renewals failed) must not cover a write. Nothing sent yet.
    this.locks.assertChainLeases();
    if (channels.transactionExec.hasSubscribers) {
      channels.transactionExec.publish(() => ({ label, attempt, commands: commands.length }));
    }
    context.execSent = true;
    return connection.exec(this.prepareForExec(commands));
  }

  /**
   * On a Cluster, a refusal because the slot is served elsewhere (MOVED, ASK,
   * TRYAGAIN, CLUSTERDOWN), met by WATCH, a read or EXEC, or the pinned
   * connection closing before EXEC, means nothing was applied: a conflict,
   * retried against the slot's (refreshed) owner.
   */
  private redirectedAsConflict<T>(outcome: AttemptOutcome<T>, slot: number): AttemptOutcome<T> {
    if (outcome.kind !== 'rolled-back') return outcome;
    const { watch } = outcome.context;
    // A read that failed because the pinned connection closed: its WATCH went with it.
    const watchLost =
      watch !== undefined &&
      watch.generation !== watch.connection.generation &&
      lostBeforeExec(outcome.error);
    const redirect = clusterRedirect(outcome.error) ?? (watchLost ? {} : undefined);
    // A read of another slot's key on the pinned connection is the method's own mistake.
    if (!redirect || (redirect.slot !== undefined && redirect.slot !== slot)) return outcome;
    this.connections.clusterWatch?.redirected(redirect);
    return { kind: 'conflict', context: outcome.context, lostWatch: reasonOf(outcome.error) };
  }

  private newContext(
    label: string,
    client: TransactionContext['client'],
    watch?: TransactionContext['watch'],
  ): TransactionContext {
    return new TransactionContext(label, client, this.recorder, watch);
  }

  /**
   * Whether the connection can go back to the pool: false when its state is
   * uncertain. A WATCH the method left behind (nothing was sent to EXEC) is
   * dropped first; after EXEC, whatever it answered, none is left, and the
   * answer comes without a promise.
   */
  private unwatchLeftover(context: TransactionContext): boolean | Promise<boolean> {
    const watch = context.watch;
    if (!watch) return true;
    const connection: TxConnection = watch.connection;
    if (!connection.isReady || connection.generation !== watch.generation) return false;
    if (context.execSent) return true;
    return connection.redis.unwatch().then(
      () => true,
      () => false,
    );
  }

  /** Nothing of the attempt was applied: tell listeners and run its rollback hooks. */
  private async rollBack(
    context: TransactionContext,
    error: unknown,
    attempts: number,
    started: number,
  ): Promise<void> {
    channels.transactionRollback.publish(() => ({
      label: context.label,
      attempts,
      durationMs: performance.now() - started,
      error,
    }));
    await this.runRollbackHooks(context, error);
  }

  private async runRollbackHooks(context: TransactionContext, error: unknown): Promise<void> {
    for (const hook of context.rollbackHooks) {
      await this.runHook('afterRollback', context.label, () => hook(error));
    }
    await this.runDroppedWorkHooks(context);
  }

  private async runDroppedWorkHooks(context: TransactionContext): Promise<void> {
    for (const { hook, error } of context.droppedWork) {
      await this.runHook('afterRollback', context.label, () => hook(error));
    }
  }

  /** A failing hook is logged and never changes the transaction's outcome. */
  private async runHook(kind: string, label: string, hook: () => unknown): Promise<void> {
    try {
      await hook();
    } catch (error) {
      this.logger.error(
        messages.hookFailed(kind, label),
        error instanceof Error ? error.stack : error,
      );
    }
  }
}

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** EXEC's reply to await, rather than an attempt settled before sending (see `exec`). */
function isSent<T>(sent: AttemptOutcome<T> | Promise<ExecReply>): sent is Promise<ExecReply> {
  return !('kind' in sent);
}

/** What EXEC's answer makes of the attempt. */
function execOutcome<T>(
  context: TransactionContext,
  value: T,
  reply: ExecReply,
): AttemptOutcome<T> {
  if (reply === null) return { kind: 'conflict', context };
  const values: unknown[] = new Array<unknown>(reply.length);
  let failures = 0;
  for (let i = 0; i < reply.length; i++) {
    const [error, value] = reply[i]!;
    if (error) failures++;
    values[i] = value;
  }
  if (failures > 0) {
    return { kind: 'failed', context, error: execError(context.label, reply, failures) };
  }
  return { kind: 'committed', context, value, replies: values };
}

/**
 * EXEC not sent, or refused as a whole: nothing was applied when it was
 * refused before sending (TransactionAbortedError, LockLostError); otherwise
 * the outcome is unknown.
 */
function execRefused<T>(context: TransactionContext, error: unknown): AttemptOutcome<T> {
  return error instanceof TransactionAbortedError || error instanceof LockLostError
    ? { kind: 'rolled-back', context, error }
    : { kind: 'failed', context, error };
}

/** EXEC's reply, or the wait for the connection before it, failed: see `execFailure`. */
function execFailed<T>(context: TransactionContext, error: unknown): AttemptOutcome<T> {
  return execRefused(context, execFailure(error, context.label));
}

/** Every command's result or error, for a transaction in which some commands failed at EXEC. */
function execError(label: string, reply: [Error | null, unknown][], failures: number): Error {
  const replies = reply.map<CommandReply>(([error, value]) =>
    error ? { ok: false, error } : { ok: true, value },
  );
  const first = reply.find(([error]) => error)![0]!;
  const message = messages.execFailed(label, failures, replies.length, first.message);
  return new TransactionExecError(message, replies);
}

/**
 * The method's own read failed because the WATCH connection dropped (e.g. a
 * Sentinel failover): the WATCH went with it and nothing was applied, so the
 * attempt counts as a conflict and runs again.
 */
function watchLostAsConflict<T>(outcome: AttemptOutcome<T>): AttemptOutcome<T> {
  const { watch } = outcome.context;
  if (outcome.kind !== 'rolled-back' || !watch || !isConnectionLostError(outcome.error)) {
    return outcome;
  }
  return watch.connection.lostSince(watch.generation)
    ? { kind: 'conflict', context: outcome.context, lostWatch: reasonOf(outcome.error) }
    : outcome;
}

/** What Redis or the connection said, for a conflict that was no changed key. */
function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
