import type { RedisConnections } from '../connection/redis-connections.js';
import type { TxConnection } from '../connection/tx-connection.js';

/** A connection lent for one lock write and its WAIT, and how to give it back. */
export interface AckConnection {
  connection: TxConnection;
  giveBack(reusable: boolean): void;
}

/** Lends a connection on which a lock's write (on the Redis key `writerKey`) and its WAIT can run alone. */
export type AckConnections = (writerKey: string, label: string) => Promise<AckConnection>;

/**
 * WAIT counts the writes of the connection it runs on, and only on the node
 * that took them. On one node (or through Sentinel) any isolated connection
 * reaches the master, so one comes from the WATCH pool. On a Cluster the
 * lock's write must go to the master of the lock's slot over a connection
 * of its own: the pinned WATCH connection to that master, which (unlike the
 * Cluster client) is one known socket to one node.
 */
export function ackConnections(connections: RedisConnections): AckConnections {
  if (connections.clusterWatch) {
    return async (writerKey, label) => {
      const pinned = (await connections.pinnedWatch([writerKey], label))!;
      return { connection: pinned.connection, giveBack: pinned.release };
    };
  }
  const pool = connections.watchPool;
  return async () => {
    const connection = await pool.acquire();
    return { connection, giveBack: (reusable) => pool.release(connection, reusable) };
  };
}
