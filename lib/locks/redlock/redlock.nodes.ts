import { once } from 'node:events';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { Redis, type RedisOptions } from 'ioredis';
import { ConnectionWarnings } from '../../connection/connection-errors.js';
import { closeClient, duplicateClient } from '../../connection/redis-client.js';
import { RedisTxError } from '../../errors/redis-tx.error.js';
import { REDIS_TX_OPTIONS } from '../../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../../module/redis-tx.options.js';
import { messages } from '../../redis-tx.messages.js';
import type { RedlockConnection } from '../lock.options.js';
import { RedlockNode } from './redlock-node.js';
import { redlockScripts } from './redlock.scripts.js';

/** How long a polite QUIT may take at shutdown before the socket is cut (a frozen master never answers it). */
const QUIT_GRACE_MS = 1_000;

/**
 * The connections of `locks.redlock`: one per master, made when the module
 * initialises and closed when the application shuts down, plus a subscriber
 * per master made on the first wait. Instances the user handed in are
 * duplicated, never used or closed themselves.
 */
@Injectable()
export class RedlockNodes implements OnModuleInit, OnApplicationShutdown {
  private readonly warnings = new ConnectionWarnings(new Logger('RedisTxModule'));
  private readonly connections: readonly RedlockConnection[];
  private made: RedlockNode[] = [];
  private readonly subscribers = new Map<RedlockNode, Redis>();
  private closed = false;

  constructor(@Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions) {
    this.connections = options.locks.redlock?.connections ?? [];
  }

  get enabled(): boolean {
    return this.connections.length > 0;
  }

  get all(): readonly RedlockNode[] {
    return this.made;
  }

  onModuleInit(): void {
    this.made = this.connections.map((connection) => {
      const client = connect(connection);
      const node = new RedlockNode(client, labelOf(client));
      this.warnings.watch(client, `Redlock master ${node.label}`);
      return node;
    });
  }

  /** The master's subscriber connection, made on first use; ioredis subscribes again after a reconnect. */
  subscriber(node: RedlockNode): Redis {
    let subscriber = this.subscribers.get(node);
    if (!subscriber) {
      if (this.closed) throw new RedisTxError(messages.moduleClosed);
      // Unlike the command connection, a subscription may wait for the master to come back.
      subscriber = node.client.duplicate({ enableOfflineQueue: true, lazyConnect: false });
      this.warnings.watch(subscriber, `Redlock subscriber ${node.label}`);
      this.subscribers.set(node, subscriber);
    }
    return subscriber;
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.made.map((n) => n.client), ...this.subscribers.values()].map(close));
  }
}

/** A connection of the module's own for one master, with the Redlock scripts. */
function connect(connection: RedlockConnection): Redis {
  const overrides = {
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    scripts: redlockScripts,
  } as const;
  if (connection instanceof Redis) return duplicateClient(connection, overrides) as Redis;
  const options: RedisOptions = typeof connection === 'string' ? {} : connection;
  const client =
    typeof connection === 'string'
      ? new Redis(connection, { ...overrides, lazyConnect: true })
      : new Redis({ ...options, ...overrides, lazyConnect: true });
  client.connect().catch(() => undefined); // failures surface as 'error' events and per-master errors
  return client;
}

function labelOf(client: Redis): string {
  const { sentinels, name, host, port, path } = client.options;
  if (sentinels?.length) return `"${name ?? 'mymaster'}" (through Sentinel)`;
  return path ?? `${host ?? 'localhost'}:${port ?? 6379}`;
}

/** Closes politely, or cuts the socket when the master is frozen and would never answer QUIT. */
async function close(client: Redis): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), QUIT_GRACE_MS);
  });
  const closed = await Promise.race([closeClient(client).then(() => true), graceOver]);
  clearTimeout(timer);
  if (closed || client.status === 'end') return;
  const ended = once(client, 'end');
  client.disconnect();
  client.stream?.destroy();
  await ended;
}
