import { Redis, type Cluster } from 'ioredis';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import type { RedisScript } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import type { ClusterRedirect } from './cluster-redirect.js';
import { TxConnection } from './tx-connection.js';
import { WatchConnectionPool } from './watch-connection.pool.js';

/** A borrowed connection to the master of one slot, and how to give it back. */
export interface PinnedConnection {
  connection: TxConnection;
  slot: number;
  release(reusable: boolean): void;
}

/**
 * WATCH connections on Redis Cluster. A WATCH, the reads that follow it and
 * MULTI/EXEC must all reach the one master that owns the watched keys' slot
 * over one connection, so each master gets its own pool of plain (non-Cluster)
 * connections, made with the Cluster's node options. The slot's owner comes
 * from the module's Cluster connection, corrected at once by any MOVED reply
 * seen here, since a retry must not go back to the old owner.
 */
export class ClusterWatchConnections {
  private readonly pools = new Map<string, WatchConnectionPool>();
  /** Owners learned from MOVED replies, newer than the Cluster's slot map until it refreshes. */
  private readonly movedTo = new Map<number, string>();
  private readonly watched = new WeakMap<TxConnection, readonly string[]>();
  private closed = false;

  constructor(
    /** The module's own Cluster connection: its slot map says who owns what. */
    private readonly router: () => TxConnection,
    private readonly size: number,
    private readonly scripts: Record<string, RedisScript>,
    private readonly onCreate: (redis: Redis) => void,
    private readonly commandTimeoutMs: number,
    private readonly onSilent: (node: string) => void,
  ) {}

  /** The keys the borrower of `connection` watches; none for any other connection. */
  watchedOn(connection: TxConnection): readonly string[] {
    return this.watched.get(connection) ?? [];
  }

  /** Borrows a connection to the master that owns `slot` (the slot of `watchKeys`) now. */
  async acquire(
    watchKeys: readonly string[],
    slot: number,
    readyTimeoutMs: number,
    label: string,
  ): Promise<PinnedConnection> {
    const router = this.router();
    await router.whenReady(readyTimeoutMs, label);
    const cluster = router.redis as Cluster;
    const node = this.movedTo.get(slot) ?? cluster.slots[slot]?.[0];
    if (node === undefined) {
      cluster.refreshSlotsCache();
      throw new TransactionAbortedError(
        messages.notSent(label, `no Cluster node serves slot ${slot} yet`),
      );
    }
    const pool = this.poolFor(node, cluster);
    // An idle connection whose node went away is of no use: drop it, take another.
    for (let tries = 0; ; tries++) {
      const connection = await pool.acquire();
      if (connection.redis.status !== 'end' || tries >= this.size) {
        this.watched.set(connection, watchKeys);
        const release = (reusable: boolean) => {
          this.watched.delete(connection);
          // Given back closed for good: its node went away (a crash, a silent
          // node dropped), so the next borrower must not read the old slot map.
          if (connection.redis.status === 'end') this.redirected({});
          pool.release(connection, reusable);
        };
        return { connection, slot, release };
      }
      pool.release(connection, false);
    }
  }

  /** A refusal on a pinned connection: remember the new owner, and have the Cluster refresh its map. */
  redirected(redirect: ClusterRedirect): void {
    if (redirect.slot !== undefined && redirect.node !== undefined) {
      this.movedTo.set(redirect.slot, redirect.node);
    }
    const cluster = this.router().redis as Cluster;
    cluster.refreshSlotsCache((error) => {
      // The refreshed map now knows better than a remembered redirect.
      if (!error && redirect.slot !== undefined) this.movedTo.delete(redirect.slot);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
  }

  private poolFor(node: string, cluster: Cluster): WatchConnectionPool {
    let pool = this.pools.get(node);
    if (!pool) {
      pool = new WatchConnectionPool(this.size, () => this.connect(node, cluster));
      this.pools.set(node, pool);
    }
    return pool;
  }

  private connect(node: string, cluster: Cluster): TxConnection {
    if (this.closed) throw new TransactionAbortedError(messages.watchPoolClosed);
    const separator = node.lastIndexOf(':');
    const redis = new Redis({
      ...cluster.options.redisOptions,
      // A Cluster keeps its prefix in its own options: the node connections apply it, so these must too.
      keyPrefix: cluster.options.keyPrefix,
      host: node.slice(0, separator),
      port: Number(node.slice(separator + 1)),
      // As for every connection the library sends EXEC on: never resend, never queue.
      autoResendUnfulfilledCommands: false,
      enableOfflineQueue: false,
      // Like the Cluster's own node connections: a lost node is not redialled;
      // the next transaction asks the (refreshed) slot map where to go.
      retryStrategy: () => null,
      lazyConnect: false,
      scripts: this.scripts,
    });
    this.onCreate(redis);
    return new TxConnection(redis, this.commandTimeoutMs, this.onSilent);
  }
}
