import { Cluster } from 'ioredis';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { RedisTxError } from '../errors/redis-tx.error.js';
import { lockScripts } from '../locks/lock.scripts.js';
import { messages } from '../redis-tx.messages.js';
import { checkSingleSlot } from '../transactions/cluster-slot-check.js';
import { createSharedClient } from './client.factory.js';
import { ConnectionWarnings } from './connection-errors.js';
import { ClusterWatchConnections, type PinnedConnection } from './cluster-watch-connections.js';
import {
  closeClient,
  duplicateClient,
  duplicateFollowingFailovers,
  type RedisClient,
} from './redis-client.js';
import { CommandGuard, dropAtOnceOnFailover } from './command-guard.js';
import { TxConnection, type QueuedCommand } from './tx-connection.js';
import { WatchConnectionPool } from './watch-connection.pool.js';

/**
 * Every connection of one module instance: the shared client (given or made),
 * the connection plain transactions are sent on, and the WATCH pool. It closes
 * what it made, and only that, when the application shuts down.
 */
@Injectable()
export class RedisConnections implements OnModuleInit, OnApplicationShutdown {
  /** One for all of the module's connections: an outage of a node is reported once. */
  private readonly warnings = new ConnectionWarnings(new Logger('RedisTxModule'));
  readonly shared: RedisClient;
  readonly watchPool: WatchConnectionPool;
  /** On Redis Cluster only: WATCH connections pinned to the master of the watched keys' slot. */
  readonly clusterWatch?: ClusterWatchConnections;
  private transactionConnection?: TxConnection;
  private subscriberConnection?: RedisClient;
  private lockConnection?: TxConnection;
  private readonly duplicate: (scripts: ResolvedRedisTxOptions['scripts']) => TxConnection;
  private readonly ownsShared: boolean;
  /** Every command `RedisTx.multi` can queue: Redis's own, `call`, and the registered scripts. */
  readonly commandNames: ReadonlySet<string>;
  private readonly scripts: ResolvedRedisTxOptions['scripts'];
  private readonly readyTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private closed = false;

  /**
   * A node stopped answering (see CommandGuard): say so once, and on a
   * Cluster ask for a fresh slot map at once, so that the next call reaches
   * a promoted replica rather than wait for an error from the silent node.
   */
  private readonly onSilentNode = (node: string): void => {
    this.warnings.silent(node, this.commandTimeoutMs);
    if (this.shared instanceof Cluster) this.shared.refreshSlotsCache();
    const router = this.transactionConnection?.redis;
    if (router instanceof Cluster) router.refreshSlotsCache();
  };

  constructor(@Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions) {
    const { client, owned } = createSharedClient(options);
    this.shared = client;
    this.scripts = options.scripts;
    this.readyTimeoutMs = options.transactions.readyTimeoutMs;
    this.commandTimeoutMs = options.commandTimeoutMs;
    this.ownsShared = owned;
    if (owned) {
      this.reportErrors(client, 'shared');
      // After a failover, read nothing more from the old master (see dropAtOnceOnFailover).
      if (!(client instanceof Cluster)) dropAtOnceOnFailover(client);
    }
    this.duplicate = (scripts) => {
      // A connection opened after shutdown would never be closed.
      if (this.closed) throw new RedisTxError(messages.moduleClosed);
      const redis = duplicateClient(client, {
        autoResendUnfulfilledCommands: false,
        enableOfflineQueue: false,
        scripts,
      });
      this.reportErrors(redis, 'transaction');
      return new TxConnection(redis, options.commandTimeoutMs, this.onSilentNode);
    };
    // The method's own reads run on a WATCH connection (RedisTx.client), so
    // the user's scripts must be callable there.
    this.watchPool = new WatchConnectionPool(options.transactions.watchConnections, () =>
      this.duplicate({ ...options.scripts, ...lockScripts }),
    );
    if (client instanceof Cluster) {
      this.clusterWatch = new ClusterWatchConnections(
        () => this.transactions,
        options.transactions.watchConnections,
        // Lock writes whose replicas must acknowledge them run on these too.
        { ...options.scripts, ...lockScripts },
        (redis) => this.reportErrors(redis, 'WATCH'),
        options.commandTimeoutMs,
        this.onSilentNode,
      );
    }
    this.commandNames = new Set([
      ...client.getBuiltinCommands(),
      'call',
      ...Object.keys(options.scripts),
    ]);
  }

  /**
   * Plain MULTI … EXEC blocks share this one: each is written in one piece, so
   * they never interleave. No script is registered on it: inside MULTI scripts
   * go out as EVAL, and ioredis copies every registered script onto each
   * MULTI it builds, a cost paid per transaction for nothing.
   */
  get transactions(): TxConnection {
    return (this.transactionConnection ??= this.duplicate({}));
  }

  /** The lock scripts run on this one, which, like the others, never resends a command whose reply was lost. */
  get locks(): TxConnection {
    return (this.lockConnection ??= this.duplicate(lockScripts));
  }

  /** One connection in subscriber mode for the whole module, made on first use; ioredis resubscribes after a reconnect. */
  get subscriber(): RedisClient {
    if (!this.subscriberConnection) {
      if (this.closed) throw new RedisTxError(messages.moduleClosed);
      const { shared } = this;
      // On a Cluster, lock hand-offs use sharded pub/sub: one subscriber per
      // shard, made by ioredis. Without a keyPrefix: ioredis would prefix
      // SSUBSCRIBE's channels (not SUBSCRIBE's), but the scripts publish bare names.
      // Through Sentinel it follows a failover at once, even on a user's instance.
      const subscriber: RedisClient =
        shared instanceof Cluster
          ? shared.duplicate(undefined, {
              shardedSubscribers: true,
              keyPrefix: '',
              redisOptions: { keyPrefix: '' },
            })
          : duplicateFollowingFailovers(shared);
      this.reportErrors(subscriber, 'subscriber');
      // SUBSCRIBE waits in the offline queue while the connection is down: bound it too.
      new CommandGuard(subscriber, this.commandTimeoutMs, this.onSilentNode);
      this.subscriberConnection = subscriber;
    }
    return this.subscriberConnection;
  }

  /** The connections open now, by role (for health checks): asking opens none. */
  opened(): [role: string, client: RedisClient][] {
    const open: [string, RedisClient | undefined][] = [
      ['shared', this.shared],
      ['transactions', this.transactionConnection?.redis],
      ['locks', this.lockConnection?.redis],
      ['subscriber', this.subscriberConnection],
    ];
    return open.flatMap(([role, client]) => (client ? [[role, client]] : []));
  }

  onModuleInit(): void {
    if (this.ownsShared && this.shared.status === 'wait')
      this.shared.connect().catch(() => undefined);
    void this.transactions;
  }

  /**
   * Inside MULTI a registered script goes out as EVAL with its source: an
   * EVALSHA whose script was flushed (SCRIPT FLUSH, a restart, a failover)
   * would fail inside EXEC after the other commands were applied.
   */
  forTransaction = (command: QueuedCommand): QueuedCommand => {
    const [name, ...args] = command;
    const base = withoutBufferSuffix(name);
    if (!Object.hasOwn(this.scripts, base)) return command;
    const script = this.scripts[base]!;
    const evalName = base === name ? 'eval' : 'evalBuffer';
    return script.numberOfKeys === undefined
      ? [evalName, script.lua, ...args]
      : [evalName, script.lua, script.numberOfKeys, ...args];
  };

  /**
   * On Redis Cluster, the one hash slot of a transaction's watched and queued
   * keys; throws TransactionCrossSlotError, before anything is sent, when
   * they span several. Undefined on a single node, or when no key is named.
   */
  slotOf(
    label: string,
    watchKeys: readonly string[],
    commands: readonly QueuedCommand[] = [],
  ): number | undefined {
    const { shared } = this;
    if (!(shared instanceof Cluster)) return undefined;
    const keyPrefix = shared.options.keyPrefix ?? '';
    return checkSingleSlot(label, watchKeys, commands.map(this.forTransaction), keyPrefix);
  }

  /** On Redis Cluster, a WATCH connection to the master of the watched keys' slot; refuses keys of several slots. */
  async pinnedWatch(
    watchKeys: readonly string[],
    label: string,
  ): Promise<PinnedConnection | undefined> {
    if (!this.clusterWatch) return undefined;
    const slot = this.slotOf(label, watchKeys)!;
    return this.clusterWatch.acquire(watchKeys, slot, this.readyTimeoutMs, label);
  }

  /** The keys a WATCH transaction on `connection` watches (on a Cluster), so its queued keys are checked against them. */
  watchedOn(connection: TxConnection): readonly string[] {
    return this.clusterWatch?.watchedOn(connection) ?? [];
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    await Promise.all([
      this.watchPool.close(),
      this.clusterWatch?.close(),
      this.transactionConnection?.close(),
      this.lockConnection?.close(),
      this.subscriberConnection && closeClient(this.subscriberConnection),
      // Together with the others, so that a server that does not answer
      // costs one QUIT grace period at shutdown, not two.
      this.ownsShared && closeClient(this.shared),
    ]);
  }

  private reportErrors(client: RedisClient, role: string): void {
    this.warnings.watch(client, `Redis ${role} connection`);
  }
}

/** ioredis names the variant of each command that replies with Buffers `<name>Buffer`. */
function withoutBufferSuffix(name: string): string {
  return name.endsWith('Buffer') ? name.slice(0, -'Buffer'.length) : name;
}
