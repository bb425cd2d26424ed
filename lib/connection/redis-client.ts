import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ConnectionLostError } from '../errors/connection-lost.error.js';
import { processGlobal } from '../shared/process-global.js';

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

/**
 * What a connection made through Sentinel needs to follow a failover, unless
 * the user chose otherwise. Sentinel turns the old master into a replica (and
 * drops its clients) only failover-timeout plus up to 10 s after the switch;
 * until then a connection left on it keeps writing to a server whose data is
 * about to be replaced, so a lock taken there would be silently lost. The
 * failover detector listens for Sentinel's +switch-master and reconnects at
 * once (at the cost of one pub/sub connection per Sentinel per connection).
 * A READONLY or MASTERDOWN reply means the connection ended up on a replica some other way
 * (a demotion Sentinel did not announce): reconnecting asks Sentinel again.
 */
export function withSentinelDefaults<T extends RedisOptions>(options: T): T {
  if (!options.sentinels?.length) return options;
  return {
    ...options,
    failoverDetector: options.failoverDetector ?? true,
    reconnectOnError: options.reconnectOnError ?? reconnectOnReadOnly,
  };
}

/**
 * Clients whose Sentinel options went through withSentinelDefaults here, so
 * their `failoverDetector` is a decision. One per process, so that a client
 * made by a module of one build of the package and handed to a module of the
 * other keeps its settled options.
 */
const sentinelOptionsSettled = processGlobal(
  'sentinel-options-settled.v1',
  () => new WeakSet<Redis>(),
);

/** A client made by the module from `options`: a later duplicate keeps its `failoverDetector` as it is. */
export function markSentinelDefaultsApplied(client: Redis): void {
  sentinelOptionsSettled.add(client);
}

/**
 * Options for a connection the module makes as a copy of `client`. ioredis
 * fills in `failoverDetector: false` on every instance, so on one the user
 * made, that value cannot be told from a choice; the module's own
 * connections then get the detector anyway, since locks depend on it.
 */
function duplicateOptions(client: Redis): RedisOptions {
  const { options } = client;
  if (!options.sentinels?.length) return options;
  return {
    ...withSentinelDefaults(options),
    failoverDetector: sentinelOptionsSettled.has(client) ? options.failoverDetector : true,
  };
}

/**
 * READONLY (the server is a replica now) or MASTERDOWN (a replica that lost
 * its master): 1, reconnect and fail the command; never 2 (resend), which
 * could apply a queued command twice.
 */
function reconnectOnReadOnly(error: Error): 1 | false {
  return /^(READONLY|MASTERDOWN)\b/.test(error.message) ? 1 : false;
}

/**
 * True once the socket has been ended, by a failover detector or a READONLY
 * reply, while ioredis still reports 'ready' until it closes: a command sent
 * then is refused at once, unsent.
 */
export function isEnding(client: RedisClient): boolean {
  if (client instanceof Cluster) return false;
  const { stream } = client;
  return stream !== undefined && stream !== null && !stream.writable;
}

/** The error ioredis rejects a command with when it could not be written (socket ended or not yet open). */
export function isUnsentError(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("Stream isn't writeable");
}

/** A command that failed because its connection went away, not because Redis refused it. */
export function isConnectionLostError(error: unknown): boolean {
  return (
    isUnsentError(error) ||
    error instanceof ConnectionLostError ||
    (error instanceof Error && error.message === 'Connection is closed.')
  );
}

/** A command that may have reached Redis and whose reply will never come: its effect is unknown. */
export function isReplyLostError(error: unknown): boolean {
  if (error instanceof ConnectionLostError) return error.reason !== 'unreachable';
  return error instanceof Error && error.message === 'Connection is closed.';
}

/** How long a closing connection waits for the reply to QUIT before cutting the socket. */
const QUIT_GRACE_MS = 2_000;

export function duplicateClient(client: RedisClient, overrides: DuplicateOverrides): RedisClient {
  if (client instanceof Cluster) {
    const { autoResendUnfulfilledCommands, scripts } = overrides;
    return client.duplicate(undefined, {
      // A Cluster opens each node's connection on first use; without its
      // offline queue every command sent while one is still connecting fails.
      // Queued commands were never written, so they cannot apply twice.
      enableOfflineQueue: true,
      scripts,
      // A node connection that closes fails its commands with "Connection is
      // closed."; by default the Cluster then resends them elsewhere, EXEC
      // included. Surface the failure instead: the library decides.
      retryDelayOnFailover: 0,
      redisOptions: { ...client.options.redisOptions, autoResendUnfulfilledCommands },
    });
  }
  return duplicateFollowingFailovers(client, { ...overrides, lazyConnect: false });
}

/** A copy of `client` that, through Sentinel, follows a failover at once (see withSentinelDefaults). */
export function duplicateFollowingFailovers(client: Redis, overrides: RedisOptions = {}): Redis {
  return tidyFailoverDetectors(client.duplicate({ ...duplicateOptions(client), ...overrides }));
}

/**
 * ioredis disconnects a replaced failover detector's Sentinel connections a
 * second time, after they have ended; each such call arms a 2 s timer waiting
 * for a 'close' that already happened, which holds the process open after
 * shutdown. Forgetting an ended connection's socket makes that call a no-op.
 */
export function tidyFailoverDetectors<T extends Redis>(client: T): T {
  if (!client.options.sentinels?.length || !client.options.failoverDetector) return client;
  // ioredis makes the detector as the socket connects, before this event.
  client.on('connect', () => {
    for (const { client: sentinel } of failoverDetectorOf(client)?.sentinels ?? []) {
      sentinel.once('end', () => forgetClosedSocket(sentinel));
    }
  });
  return client;
}

/**
 * Closes a connection politely when it is up, at once otherwise, and resolves
 * once its socket is gone; never throws, never hangs on a dead server.
 */
export async function closeClient(client: RedisClient): Promise<void> {
  await closeConnection(client);
  await closeFailoverDetector(client);
}

/** `polite`: QUIT a ready connection, so that the replies still on their way arrive first. */
async function closeConnection(client: RedisClient, polite = true): Promise<void> {
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
      const ended = ending(client);
      // A socket already ending refuses QUIT unsent, and would then reconnect.
      if (!polite || isEnding(client)) {
        client.disconnect();
        await ended;
        return;
      }
      // Not awaited: a server that never answers would hold QUIT forever,
      // and endedWithin cuts the socket after the grace period instead. QUIT
      // refused (the socket ended meanwhile) closes it without.
      client.quit().catch(() => {
        if (client.status !== 'end') client.disconnect();
      });
      await endedWithin(client, ended, QUIT_GRACE_MS);
      return;
    }
    case 'wait': {
      // Never connected: disconnect() ends it at once.
      const ended = ending(client);
      client.disconnect();
      await ended;
      return;
    }
    default: {
      // A connection still in its handshake ignores disconnect() and would
      // finish connecting afterwards: let the handshake settle, then close.
      // A server that accepted the connection but never answers (frozen,
      // or a half-open path) would hold that forever: cut it after the grace.
      if (await settlesWithin(nextSettling(client), QUIT_GRACE_MS)) {
        await closeConnection(client, polite);
      } else {
        await cutOff(client);
      }
    }
  }
}

/**
 * Resolves at the client's 'end'. A plain listener: events.once() would
 * reject on an 'error' emitted meanwhile, which a closing connection may do.
 */
function ending(client: RedisClient): Promise<void> {
  return new Promise((resolve) => client.once('end', () => resolve()));
}

/** Ends a connection without asking its server: its sockets are destroyed, and nothing reconnects. */
async function cutOff(client: RedisClient): Promise<void> {
  const ended = ending(client);
  client.disconnect();
  const connections = client instanceof Cluster ? client.nodes('all') : [client];
  for (const connection of connections) {
    const connector = (connection as unknown as { connector?: { stream?: { destroy(): void } } })
      .connector;
    connector?.stream?.destroy();
  }
  // 'end' follows the destroyed socket's 'close'; should ioredis not emit
  // it, nothing of this connection is left open to wait for anyway.
  await settlesWithin(ended, QUIT_GRACE_MS);
}

/** Whether `promise` settles within `ms`; the timer is cleared either way. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for `ended`; a server that never answers QUIT (frozen, or behind a
 * half-open connection) gets its socket cut after `graceMs`.
 */
async function endedWithin(client: RedisClient, ended: Promise<unknown>, graceMs: number) {
  if (await settlesWithin(ended, graceMs)) return;
  client.disconnect();
  if (!(client instanceof Cluster)) client.stream?.destroy();
  await ended;
}

/**
 * The next of 'ready', 'close' or 'end' on `client`. Plain listeners rather
 * than events.once(), which adds an 'error' listener per event and call, so
 * that many callers waiting at once do not pile listeners up.
 */
export function nextSettling(client: RedisClient): Promise<'ready' | 'close' | 'end'> {
  const events = ['ready', 'close', 'end'] as const;
  return new Promise((resolve) => {
    const listeners = events.map((event) => {
      const listener = () => {
        events.forEach((other, i) => client.off(other, listeners[i]!));
        resolve(event);
      };
      client.once(event, listener);
      return listener;
    });
  });
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

function failoverDetectorOf(client: RedisClient): FailoverDetectorInternals | undefined {
  const connector = (
    client as unknown as { connector?: { failoverDetector?: FailoverDetectorInternals | null } }
  ).connector;
  return connector?.failoverDetector ?? undefined;
}

interface FailoverDetectorInternals {
  isDisconnected: boolean;
  sentinels: { client: Redis }[];
}

/**
 * QUIT ends a Sentinel connection without telling its connector, so the
 * failover detector's pub/sub connections to the Sentinels would stay open
 * and keep the process alive.
 */
async function closeFailoverDetector(client: RedisClient): Promise<void> {
  const detector = failoverDetectorOf(client);
  if (!detector) return;
  // Its own message handler must not reconnect the connection being closed.
  detector.isDisconnected = true;
  // Only subscribed, so nothing is owed to them; and Sentinel (7.0) rejects QUIT as unknown.
  await Promise.all(
    detector.sentinels.map(({ client: sentinel }) => closeConnection(sentinel, false)),
  );
}
