import { once } from 'node:events';
import { Cluster, Redis } from 'ioredis';

/** The shared client: a single node (direct or through Sentinel) or a Cluster. */
export type RedisClient = Redis | Cluster;

/** Options a duplicate needs so that the library, not ioredis, decides what happens to unanswered commands. */
export interface DuplicateOverrides {
  /** Never resend a command after a reconnect: a resent EXEC could apply twice. */
  autoResendUnfulfilledCommands: false;
  /** Fail at once instead of queueing while disconnected: the library waits for `ready` itself. */
  enableOfflineQueue: false;
  scripts: Record<string, { lua: string; numberOfKeys?: number }>;
}

export function duplicateClient(client: RedisClient, overrides: DuplicateOverrides): RedisClient {
  if (client instanceof Cluster) {
    const { autoResendUnfulfilledCommands, enableOfflineQueue, scripts } = overrides;
    return client.duplicate(undefined, {
      enableOfflineQueue,
      scripts,
      redisOptions: { ...client.options.redisOptions, autoResendUnfulfilledCommands },
    });
  }
  return client.duplicate({ ...overrides, lazyConnect: false });
}

/**
 * Closes a connection politely when it is up, at once otherwise, and resolves
 * once its socket is gone; never throws, never hangs on a dead server.
 */
export async function closeClient(client: RedisClient): Promise<void> {
  switch (client.status) {
    case 'end':
      return;
    case 'close':
    case 'reconnecting':
      // No socket is open, only a reconnect pending: cancelling it is all
      // there is to do, and no 'end' event will follow.
      forgetClosedSocket(client);
      client.disconnect();
      return;
    case 'ready': {
      const ended = once(client, 'end');
      // A connection that breaks while quitting closes all the same.
      await client.quit().catch(() => undefined);
      await ended;
      return;
    }
    case 'wait': {
      // Never connected: disconnect() ends it at once.
      const ended = once(client, 'end');
      client.disconnect();
      await ended;
      return;
    }
    default: {
      // A connection still in its handshake ignores disconnect() and would
      // finish connecting afterwards: let the handshake settle, then close.
      await settled(client);
      await closeClient(client);
    }
  }
}

/** Resolves at the next 'ready', 'close' or 'end', whichever comes first. */
async function settled(client: RedisClient): Promise<void> {
  const done = new AbortController();
  try {
    await Promise.race(
      ['ready', 'close', 'end'].map((event) =>
        once(client, event, { signal: done.signal }).catch(() => undefined),
      ),
    );
  } finally {
    done.abort();
  }
}

/**
 * Between reconnect attempts ioredis still holds the socket that closed, and
 * disconnect() then arms a timer (2 s by default) waiting for a 'close' event
 * that already happened, which keeps the process alive after shutdown.
 */
function forgetClosedSocket(client: RedisClient): void {
  const connector = (client as unknown as { connector?: { stream?: { destroyed?: boolean } } })
    .connector;
  if (connector?.stream?.destroyed) connector.stream = undefined;
}
