import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { ReplyError } from 'ioredis';
import { RedisConnections } from '../connection/redis-connections.js';
import type { QueuedCommand, TxConnection } from '../connection/tx-connection.js';
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
import type { TransactionOptions, TransactionResult } from './transaction.options.js';
import { resolveWatchKeys } from './transaction-options.validator.js';

/** How one attempt ended. `failed` means something may have been applied, so no hook of either kind runs. */
type AttemptOutcome<T> =
  | { kind: 'committed'; context: TransactionContext; value: T; replies: unknown[] }
  /** `lostWatch` says why, when the WATCH was lost (a failover, a dropped connection) rather than a key changed. */
  | { kind: 'conflict'; context: TransactionContext; lostWatch?: string }
  | { kind: 'rolled-back'; context: TransactionContext; error: unknown }
  | { kind: 'failed'; context: TransactionContext; error: unknown };

/**
 * The one implementation of a transaction. `@Transactional` and `RedisTx.run`
 * are thin layers over `execute`; the active transaction of each async call
 * chain lives in this instance's AsyncLocalStorage.
 */
@Injectable()
export class TransactionRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger('RedisTx');
  private readonly storage = new AsyncLocalStorage<TransactionContext>();
  /** Outermost transactions running now; shutdown lets them finish before connections close. */
  private readonly running = new Set<Promise<unknown>>();
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
  ): Promise<TransactionResult<T>> {
    try {
      const active = this.current;
      const watchKeys = resolveWatchKeys(options.watch, args, label);
      switch (options.propagation ?? 'required') {
        case 'never':
          if (active) throw new TransactionPropagationError(messages.neverInsideTransaction(label));
          return this.outside(fn);
        case 'mandatory':
          if (!active)
            throw new NoActiveTransactionError(messages.mandatoryWithoutTransaction(label));
          return this.join(active, fn, watchKeys, label);
        case 'required':
          if (active) return this.join(active, fn, watchKeys, label);
          return this.beginTracked(fn, watchKeys, options, label);
        case 'requires_new':
          return this.beginTracked(fn, watchKeys, options, label);
      }
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /**
   * Shutdown: new transactions are refused from now on, and those already
   * running get up to `shutdownTimeoutMs` to finish, so that connections
   * close under none of them. One still running then meets the closing
   * connections: it fails unsent, or as outcome unknown if its EXEC was on
   * the wire.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    await settleWithin([...this.running], this.options.shutdownTimeoutMs);
  }

  /** An outermost transaction: refused once shutdown has begun, and waited for by shutdown otherwise. */
  private beginTracked<T>(
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    options: TransactionOptions,
    label: string,
  ): Promise<TransactionResult<T>> {
    if (this.closing) return Promise.reject(new ShuttingDownError(messages.shuttingDown(label)));
    const transaction = tracing.transaction.hasSubscribers
      ? traceTransaction(options.traceName ?? label, watchKeys.length > 0, () =>
          this.begin(fn, watchKeys, options.retries, label),
        )
      : this.begin(fn, watchKeys, options.retries, label);
    this.running.add(transaction);
    const forget = () => void this.running.delete(transaction);
    transaction.then(forget, forget);
    return transaction;
  }

  private async outside<T>(fn: () => T | Promise<T>): Promise<TransactionResult<T>> {
    return { value: await fn(), replies: undefined, attempts: 0 };
  }

  private async join<T>(
    context: TransactionContext,
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    label: string,
  ): Promise<TransactionResult<T>> {
    if (watchKeys.length > 0) {
      if (!context.watch) throw new TransactionPropagationError(messages.watchCannotJoin(label));
      const { connection } = context.watch;
      // On a Cluster, the joined keys must live in the slot the connection is pinned to.
      this.connections.slotOf(label, [...this.connections.watchedOn(connection), ...watchKeys]);
      await connection.redis.watch(...watchKeys);
    }
    const savepoint = context.savepoint();
    try {
      return { value: await fn(), replies: undefined, attempts: 0 };
    } catch (error) {
      context.rollbackTo(savepoint, error);
      throw error;
    }
  }

  private async begin<T>(
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    retries: number | undefined,
    label: string,
  ): Promise<TransactionResult<T>> {
    const { backoff } = this.options.transactions;
    // Without WATCH nothing can conflict, so there is nothing to retry.
    const attempts = watchKeys.length > 0 ? 1 + (retries ?? this.options.transactions.retries) : 1;
    const started = performance.now();
    for (let attempt = 1; ; attempt++) {
      const attemptStarted = performance.now();
      channels.transactionStart.publish(() => ({ label, attempt, watch: watchKeys }));
      const outcome = await this.attempt(fn, watchKeys, label, attempt);
      const { context } = outcome;
      switch (outcome.kind) {
        case 'committed':
          channels.transactionCommit.publish(() => ({
            label,
            attempts: attempt,
            commands: outcome.replies.length,
            durationMs: performance.now() - started,
          }));
          for (const hook of context.commitHooks) {
            await this.runHook('afterCommit', label, () => hook(outcome.replies));
          }
          if (context.droppedWork.length > 0) await this.runDroppedWorkHooks(context);
          return { value: outcome.value, replies: outcome.replies, attempts: attempt };
        case 'rolled-back':
          await this.rollBack(context, outcome.error, attempt, started);
          throw outcome.error;
        case 'failed':
          throw outcome.error;
        case 'conflict':
          channels.transactionConflict.publish(() => ({
            label,
            attempt,
            durationMs: performance.now() - attemptStarted,
          }));
          if (attempt === attempts) {
            const message =
              outcome.lostWatch === undefined
                ? messages.conflict(label, attempt)
                : messages.conflictLostWatch(label, attempt, outcome.lostWatch);
            const error = new TransactionConflictError(message, attempt);
            await this.rollBack(context, error, attempt, started);
            throw error;
          }
      }
      // The conflicted attempt's hooks are dropped with it.
      const delayMs = backoffDelay(attempt, backoff.initialMs, backoff.maxMs);
      channels.transactionRetry.publish(() => ({ label, attempt, delayMs }));
      await delay(delayMs);
    }
  }

  /** One run of the method and its EXEC. */
  private attempt<T>(
    fn: () => T | Promise<T>,
    watchKeys: readonly string[],
    label: string,
    attempt: number,
  ): Promise<AttemptOutcome<T>> {
    if (watchKeys.length > 0) return this.attemptWatched(fn, watchKeys, label, attempt);
    const context = this.newContext(label, this.connections.shared);
    return this.runAndExec(context, this.connections.transactions, fn, attempt);
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
      await connection.whenReady(this.options.transactions.readyTimeoutMs, label);
      const generation = connection.generation;
      await connection.redis.watch(...watchKeys);
      const context = this.newContext(label, connection.redis, { connection, generation });
      const outcome = await this.runAndExec(context, connection, fn, attempt);
      const reusable = outcome.kind === 'failed' ? false : await this.unwatch(context);
      giveBack(reusable);
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
    const { label } = context;
    let value: T;
    try {
      value = await this.storage.run(context, fn);
    } catch (error) {
      return { kind: 'rolled-back', context, error };
    } finally {
      context.end();
    }
    const { commands } = context.queue;
    if (commands.length === 0) return { kind: 'committed', context, value, replies: [] };
    if (context.watch && connection.lostSince(context.watch.generation)) {
      // The connection dropped (or is dropping) after WATCH: the next one watches nothing.
      return { kind: 'conflict', context, lostWatch: messages.watchConnectionDropped };
    }
    let reply;
    try {
      // On a Cluster, keys of several slots are refused here, before anything is sent.
      if (this.connections.clusterWatch) {
        this.connections.slotOf(label, this.connections.watchedOn(connection), commands);
      }
      const notReady = connection.whenReady(this.options.transactions.readyTimeoutMs, label);
      if (notReady) await notReady;
      // Under @Locked: a lock whose lease may have ended (this process was
      // paused, or renewals failed) must not cover a write. Nothing sent yet.
      this.locks.assertChainLeases();
      channels.transactionExec.publish(() => ({ label, attempt, commands: commands.length }));
      context.execSent = true;
      reply = await connection.exec(this.prepareForExec(commands), label);
    } catch (error) {
      return error instanceof TransactionAbortedError || error instanceof LockLostError
        ? { kind: 'rolled-back', context, error }
        : { kind: 'failed', context, error };
    }
    if (reply === null) return { kind: 'conflict', context };
    const values: unknown[] = new Array<unknown>(reply.length);
    let failures = 0;
    for (let i = 0; i < reply.length; i++) {
      const [error, value] = reply[i]!;
      if (error) failures++;
      values[i] = value;
    }
    if (failures > 0) return { kind: 'failed', context, error: execError(label, reply, failures) };
    return { kind: 'committed', context, value, replies: values };
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

  /** Drops a WATCH the method left behind; false when the connection's state is uncertain. */
  private async unwatch(context: TransactionContext): Promise<boolean> {
    const watch = context.watch;
    if (!watch) return true;
    const connection: TxConnection = watch.connection;
    if (!connection.isReady || connection.generation !== watch.generation) return false;
    // EXEC, whatever it answered, already dropped every WATCH of the connection.
    if (context.execSent) return true;
    try {
      await connection.redis.unwatch();
      return true;
    } catch {
      return false;
    }
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
