import type { TxConnection } from '../connection/tx-connection.js';
import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import { RedisTxError } from '../errors/redis-tx.error.js';
import { messages } from '../redis-tx.messages.js';
import type { AckConnection, AckConnections } from './ack-connections.js';

/** How many replicas must acknowledge a lock, and for how long to wait for them. */
export interface ReplicaAckOptions {
  replicaAcks: number;
  replicaAckTimeoutMs: number;
}

/** One write of a lock that replicas must acknowledge, as the lock service runs it. */
export interface AckedWrite<T> {
  /** The lock's own Redis key: on a Cluster, its slot picks the master the write goes to. */
  writerKey: string;
  /** The write (the acquire or extend script), sent on the connection given. */
  write: (connection: TxConnection) => Promise<T>;
  /** Whether the write holds the lock now, so that it must be acknowledged. */
  holds: (result: T) => boolean;
  /** Releases the lock by its token when too few replicas acknowledge it. */
  release: () => Promise<unknown>;
}

/**
 * Acknowledgement of a lock by replicas (Redis WAIT), failing closed.
 *
 * WAIT counts the writes of the connection it is sent on and blocks that
 * connection until it answers; on the module's lock connection it would
 * stall every other lock for up to the timeout. So the write and its WAIT go
 * on a connection lent for them alone (see ackConnections), which has the
 * lock scripts, and nothing else waits behind them.
 */
export class ReplicaAcks {
  constructor(private readonly lend: AckConnections) {}

  /**
   * Runs `step.write` on a connection of its own and, when it took the lock,
   * waits for the replicas; returns the write's result. Too few replicas in
   * time: the lock is released and LockNotAcquiredError thrown.
   */
  async confirm<T>(
    name: string,
    keys: readonly string[],
    options: ReplicaAckOptions,
    step: AckedWrite<T>,
  ): Promise<T> {
    const { connection, giveBack } = await this.borrow(name, keys, step.writerKey);
    try {
      const result = await step.write(connection);
      if (!step.holds(result)) return result;
      const { replicaAcks, replicaAckTimeoutMs } = options;
      let acknowledged = 0;
      let cause: unknown;
      try {
        acknowledged = await connection.unlessLost(
          connection.redis.wait(replicaAcks, replicaAckTimeoutMs),
          () => new RedisTxError(messages.lockConnectionFailed(name)),
        );
      } catch (error) {
        cause = error;
      }
      if (acknowledged >= replicaAcks) return result;
      // Released before anyone can rely on it: a failover to a replica that
      // never saw this lock would otherwise hand it to a second holder.
      await step.release().catch(() => false);
      throw new LockNotAcquiredError(
        messages.replicaAcksMissing(name, acknowledged, replicaAcks, replicaAckTimeoutMs),
        keys,
        { reason: 'replica-acks', cause },
      );
    } finally {
      // WAIT leaves nothing behind on the connection; a dropped one is replaced.
      giveBack(connection.isReady);
    }
  }

  /** A connection for the write; none to be had (no master for the slot yet, shutdown) means nothing was taken. */
  private async borrow(
    name: string,
    keys: readonly string[],
    writerKey: string,
  ): Promise<AckConnection> {
    try {
      return await this.lend(writerKey, `lock "${name}"`);
    } catch (cause) {
      throw new LockNotAcquiredError(messages.lockNoAckConnection(keys, cause), keys, {
        reason: 'connection',
        cause,
      });
    }
  }
}
