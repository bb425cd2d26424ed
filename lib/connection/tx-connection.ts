import { once } from 'node:events';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { TransactionOutcomeUnknownError } from '../errors/transaction-outcome-unknown.error.js';
import { messages } from '../redis-tx.messages.js';
import { clusterRedirect } from './cluster-redirect.js';
import { closeClient, isEnding, isUnsentError, type RedisClient } from './redis-client.js';

/** A queued command: its name (a Redis command or a registered script) and its arguments. */
export type QueuedCommand = [name: string, ...args: unknown[]];

/** What EXEC answered: null when a watched key changed, otherwise one [error, reply] pair per command. */
export type ExecReply = [Error | null, unknown][] | null;

/**
 * A connection the library owns and sends MULTI … EXEC on. It counts its
 * reconnects (a WATCH does not survive one) and turns a connection lost while
 * EXEC is unanswered into TransactionOutcomeUnknownError, because ioredis
 * would otherwise either resend it (a double apply) or leave it hanging.
 */
export class TxConnection {
  private closes = 0;
  private readonly inFlight = new Set<() => void>();
  private readyWait?: Promise<boolean>;

  constructor(readonly redis: RedisClient) {
    redis.on('close', () => {
      this.closes++;
      for (const lose of this.inFlight) lose();
      this.inFlight.clear();
    });
  }

  /** Changes whenever the connection has closed; a WATCH taken in another generation is gone. */
  get generation(): number {
    return this.closes;
  }

  /** Whether the connection has dropped, or is dropping, since `generation`: a WATCH taken then is gone. */
  lostSince(generation: number): boolean {
    return this.closes !== generation || !this.isReady;
  }

  /** Ready, and its socket not already ending (ioredis says 'ready' until the socket has closed). */
  get isReady(): boolean {
    return this.redis.status === 'ready' && !isEnding(this.redis);
  }

  /**
   * Waits until commands are written straight to the socket, so nothing sits
   * in an offline queue. Returns undefined when the connection is ready
   * already, so the common case costs no promise.
   */
  whenReady(timeoutMs: number, label: string): Promise<void> | undefined {
    if (this.isReady) return undefined;
    return this.nextReadyOrFail(timeoutMs, label);
  }

  private async nextReadyOrFail(timeoutMs: number, label: string): Promise<void> {
    if (this.redis.status === 'end') {
      throw new TransactionAbortedError(messages.notSent(label, 'its connection is closed'));
    }
    // Every caller waiting for the same (re)connection shares one listener.
    this.readyWait ??= this.nextReady(timeoutMs).finally(() => {
      this.readyWait = undefined;
    });
    if (!(await this.readyWait)) {
      throw new TransactionAbortedError(
        messages.notSent(label, `Redis was not reachable within ${timeoutMs} ms`),
      );
    }
  }

  /** True once the connection is ready, false when it ends (it will not reconnect) or `timeoutMs` passes first. */
  private async nextReady(timeoutMs: number): Promise<boolean> {
    if (this.redis.status === 'wait') this.redis.connect().catch(() => undefined);
    const gaveUp = new AbortController();
    const timer = setTimeout(() => gaveUp.abort(), timeoutMs);
    try {
      return await Promise.race([
        once(this.redis, 'ready', { signal: gaveUp.signal }).then(() => true),
        once(this.redis, 'end', { signal: gaveUp.signal }).then(() => false),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
      gaveUp.abort();
    }
  }

  /** Sends MULTI, the commands and EXEC in one write. Call only when `isReady`. */
  exec(commands: QueuedCommand[], label: string): Promise<ExecReply> {
    const reply = this.redis.multi(commands as unknown as unknown[][]).exec() as Promise<ExecReply>;
    return this.settleUnlessLost(
      reply,
      (error) => toExecFailure(error, label),
      () => new TransactionOutcomeUnknownError(messages.outcomeUnknown(label)),
    );
  }

  /**
   * Settles as `reply` does (a failed reply rejects with `failure(error)`),
   * unless the connection closes first: then rejects with `lost()`, since
   * with automatic resend off that reply never comes.
   */
  unlessLost<T>(
    reply: Promise<T>,
    lost: () => Error,
    failure: (error: unknown) => unknown = (error) => error,
  ): Promise<T> {
    return this.settleUnlessLost(reply, failure, lost);
  }

  private settleUnlessLost<T>(
    reply: Promise<T>,
    failure: (error: unknown) => unknown,
    lost: () => Error,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const lose = () => reject(lost());
      this.inFlight.add(lose);
      reply.then(
        (value) => {
          this.inFlight.delete(lose);
          resolve(value);
        },
        (error: unknown) => {
          this.inFlight.delete(lose);
          reject(failure(error));
        },
      );
    });
  }

  close(): Promise<void> {
    return closeClient(this.redis);
  }
}

function toExecFailure(error: unknown, label: string): Error {
  if (isUnsentError(error)) {
    // Refused before a byte was written: the socket had just been ended.
    return new TransactionAbortedError(messages.notSent(label, 'its connection was closing'), [], {
      cause: error,
    });
  }
  if (error instanceof Error && error.message.startsWith('EXECABORT')) {
    const causes = (error as Error & { previousErrors?: Error[] }).previousErrors ?? [];
    const moved = causes.find((cause) => clusterRedirect(cause));
    // A queued command sent to a node that no longer serves its slot: not a fault of the command.
    const message = moved
      ? messages.clusterRefusedExec(label, moved.message)
      : messages.execAborted(label, causes);
    return new TransactionAbortedError(message, causes, { cause: error });
  }
  if (clusterRedirect(error)) {
    // A Cluster node refused EXEC itself (the slot moved, or the cluster is
    // down): Redis discards the transaction then, so nothing was applied.
    return new TransactionAbortedError(
      messages.clusterRefusedExec(label, (error as Error).message),
      [],
      { cause: error },
    );
  }
  // The reply was an error we cannot attribute to a queued command; what
  // reached Redis is unknown, so say so rather than guess.
  return new TransactionOutcomeUnknownError(messages.outcomeUnknown(label), { cause: error });
}
