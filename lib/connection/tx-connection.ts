import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { TransactionOutcomeUnknownError } from '../errors/transaction-outcome-unknown.error.js';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { RedisTxError } from '../errors/redis-tx.error.js';
import { markHttpStatus } from '../errors/http-status.js';
import { messages } from '../redis-tx.messages.js';
import { clusterRedirect } from './cluster-redirect.js';
import { CommandGuard } from './command-guard.js';
import {
  closeClient,
  isEnding,
  isReplyLostError,
  isUnsentError,
  type RedisClient,
} from './redis-client.js';
import { readyWithin } from './ready-within.js';
import { WriteCoalescer } from './write-coalescer.js';

/** A queued command: its name (a Redis command or a registered script) and its arguments. */
export type QueuedCommand = [name: string, ...args: unknown[]];

/** What EXEC answered: null when a watched key changed, otherwise one [error, reply] pair per command. */
export type ExecReply = [Error | null, unknown][] | null;

/**
 * A connection the library owns and sends MULTI … EXEC on. Its CommandGuard
 * makes every command on it settle (a lost or silent connection fails what
 * it carried); it counts its reconnects (a WATCH does not survive one); and
 * `execFailure` turns a reply lost after EXEC was sent into
 * TransactionOutcomeUnknownError, because ioredis would otherwise either
 * resend it (a double apply) or leave it hanging.
 */
export class TxConnection {
  private closes = 0;
  private readyWait?: Promise<void>;
  private readonly coalescer: WriteCoalescer;

  constructor(
    readonly redis: RedisClient,
    commandTimeoutMs: number,
    onSilent?: (node: string) => void,
  ) {
    new CommandGuard(redis, commandTimeoutMs, onSilent);
    this.coalescer = new WriteCoalescer(redis);
    redis.on('close', () => {
      this.closes++;
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
      throw unsentForConnection(messages.notSent(label, 'its connection is closed'));
    }
    // Every caller waiting for the same (re)connection shares one wait.
    this.readyWait ??= this.nextReady(timeoutMs).finally(() => {
      this.readyWait = undefined;
    });
    try {
      await this.readyWait;
    } catch (error) {
      throw unsentForConnection(messages.notSent(label, (error as Error).message), error);
    }
  }

  private nextReady(timeoutMs: number): Promise<void> {
    if (this.redis.status === 'wait') this.redis.connect().catch(() => undefined);
    return readyWithin(this.redis, timeoutMs);
  }

  /**
   * Call right before sending a command: under load, the commands of one tick
   * leave in one socket write (see WriteCoalescer).
   */
  readonly coalesceWrites = (): void => {
    this.coalescer.beforeWrite();
  };

  /**
   * Sends MULTI, the commands and EXEC in one write. Call only when `isReady`.
   * Rejects with what ioredis or the CommandGuard said: classify it with
   * {@link execFailure}. The caller does so where it already catches, so
   * that no promise is chained on here for every transaction.
   */
  exec(commands: QueuedCommand[]): Promise<ExecReply> {
    this.coalescer.beforeWrite();
    return this.redis.multi(commands as unknown as unknown[][]).exec() as Promise<ExecReply>;
  }

  /**
   * Settles as `reply` does; a reply lost with its connection rejects with
   * `lost(error)`, any other failure with `failure(error)`.
   */
  unlessLost<T>(
    reply: Promise<T>,
    lost: (error: unknown) => Error,
    failure: (error: unknown) => unknown = (error) => error,
  ): Promise<T> {
    return reply.catch((error: unknown) => {
      throw isReplyLostError(error) ? lost(error) : failure(error);
    });
  }

  close(): Promise<void> {
    return closeClient(this.redis);
  }
}

/**
 * Not sent because Redis could not be reached: nothing was applied, and the
 * request itself was fine, so over HTTP it answers 503, not 500.
 */
function unsentForConnection(message: string, cause?: unknown): TransactionAbortedError {
  const error = new TransactionAbortedError(message, [], { cause });
  markHttpStatus(error, 'SERVICE_UNAVAILABLE');
  return error;
}

/**
 * What a rejection of {@link TxConnection.exec} means for the transaction:
 * TransactionAbortedError when nothing was applied, otherwise
 * TransactionOutcomeUnknownError. An error the library has already typed
 * (the wait for the connection failed, a lock's lease ended before sending)
 * is returned as it is; only the guard's ConnectionLostError still needs
 * reading.
 */
export function execFailure(error: unknown, label: string): Error {
  if (error instanceof RedisTxError && !(error instanceof ConnectionLostError)) return error;
  if (isUnsentError(error) || (error instanceof ConnectionLostError && !isReplyLostError(error))) {
    // Refused before a byte was written: the socket had just been ended.
    return unsentForConnection(messages.notSent(label, 'its connection was closing'), error);
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
  // The reply was lost, or was an error we cannot attribute to a queued
  // command; what reached Redis is unknown, so say so rather than guess.
  return new TransactionOutcomeUnknownError(messages.outcomeUnknown(label), { cause: error });
}
