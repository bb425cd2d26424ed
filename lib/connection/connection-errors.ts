import type { Logger } from '@nestjs/common';
import { Cluster, type Redis } from 'ioredis';
import { messages } from '../redis-tx.messages.js';
import type { RedisClient } from './redis-client.js';

/**
 * Reports the connection failures of one module (or one set of Redlock
 * masters) through Nest's logger, instead of ioredis printing them: one
 * warning per node (host:port) and outage, whichever connection meets it
 * first, and one line once a connection to that node is ready again.
 *
 * Per node rather than per connection, because during a failover every
 * attempt may open a new connection to the lost node, and each would
 * otherwise warn of the same outage again.
 */
export class ConnectionWarnings {
  /** Nodes in an outage now, warned about once. */
  private readonly down = new Set<string>();

  constructor(private readonly logger: Logger) {}

  /** Reports the failures of `client`, a `who` ("Redis WATCH connection") of the module. */
  watch(client: RedisClient, who: string): void {
    if (client instanceof Cluster) this.watchCluster(client, who);
    else this.watchNode(client, who);
  }

  /** A node that stopped answering (see CommandGuard): an outage too, though no error was raised. */
  silent(node: string, commandTimeoutMs: number): void {
    if (this.down.has(node)) return;
    this.down.add(node);
    this.logger.warn(messages.connectionSilent(node, commandTimeoutMs));
  }

  private watchNode(redis: Redis, who: string): void {
    redis.on('error', (error: Error) => this.failed(errorNode(redis, error), who, error));
    redis.on('ready', () => this.ready(readyNodes(redis), who));
  }

  private watchCluster(cluster: Cluster, who: string): void {
    cluster.on('node error', (error: Error, node: string) => this.failed(node, who, error));
    const onNode = (redis: Redis) => redis.on('ready', () => this.ready(readyNodes(redis), who));
    cluster.on('+node', onNode);
    cluster.nodes('all').forEach(onNode);
    // The Cluster's own errors (a slot map refresh that failed everywhere)
    // name no node: once per distinct message until it is ready again.
    let last = '';
    cluster.on('error', (error: Error) => {
      if (error.message === last) return;
      last = error.message;
      this.logger.warn(`${who}: ${error.message}`);
    });
    cluster.on('ready', () => (last = ''));
  }

  private failed(node: string, who: string, error: Error): void {
    if (this.down.has(node)) return;
    this.down.add(node);
    this.logger.warn(messages.connectionDown(who, node, error.message));
  }

  private ready(nodes: string[], who: string): void {
    for (const node of nodes) {
      if (this.down.delete(node)) this.logger.log(messages.connectionRecovered(who, node));
    }
  }
}

/**
 * The node an error is about. A connection straight to one node names it by
 * its options, as the guard and the Cluster do. Through Sentinel the node
 * changes with failovers: the socket error names the address it failed on,
 * and an error without one (no Sentinel answered) stands for the master set.
 */
function errorNode(redis: Redis, error: Error): string {
  if (!redis.options.sentinels?.length) return optionsNode(redis);
  const { address, port } = error as Error & { address?: string; port?: number };
  return address && port ? `${address}:${port}` : sentinelMaster(redis);
}

/** The names under which the node a connection is ready on may have been reported down. */
function readyNodes(redis: Redis): string[] {
  if (!redis.options.sentinels?.length) return [optionsNode(redis)];
  const stream = redis.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  const address = stream?.remoteAddress ? [`${stream.remoteAddress}:${stream.remotePort}`] : [];
  // The guard names a silent node by its options, which through Sentinel name no node.
  return [...address, sentinelMaster(redis), optionsNode(redis)];
}

function sentinelMaster(redis: Redis): string {
  return `${redis.options.name ?? 'master'} (through Sentinel)`;
}

function optionsNode(redis: Redis): string {
  return `${redis.options.host ?? 'localhost'}:${redis.options.port ?? 6379}`;
}
