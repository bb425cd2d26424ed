import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisScript, ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import {
  markSentinelDefaultsApplied,
  tidyFailoverDetectors,
  withSentinelDefaults,
  type RedisClient,
} from './redis-client.js';

/**
 * Clients made here connect only when the module initialises, so a bootstrap
 * that fails before then leaves no socket open behind it.
 */
export interface SharedClient {
  client: RedisClient;
  /** False when the user handed in the instance: the module must not close it. */
  owned: boolean;
}

export function createSharedClient(options: ResolvedRedisTxOptions): SharedClient {
  const { connection, scripts } = options;
  if (connection instanceof Redis || connection instanceof Cluster) {
    for (const [name, script] of Object.entries(scripts)) defineScript(connection, name, script);
    return { client: connection, owned: false };
  }
  if (typeof connection === 'string') {
    return { client: new Redis(connection, { scripts, lazyConnect: true }), owned: true };
  }
  if ('cluster' in connection) {
    const clusterOptions = connection.options ?? {};
    return {
      client: new Cluster(connection.cluster, {
        ...clusterOptions,
        lazyConnect: true,
        scripts: { ...clusterOptions.scripts, ...scripts },
      }),
      owned: true,
    };
  }
  const redisOptions: RedisOptions = connection;
  const client = new Redis({
    ...withSentinelDefaults(redisOptions),
    lazyConnect: true,
    scripts: { ...redisOptions.scripts, ...scripts },
  });
  markSentinelDefaultsApplied(client);
  return { client: tidyFailoverDetectors(client), owned: true };
}

function defineScript(client: RedisClient, name: string, script: RedisScript): void {
  client.defineCommand(name, { lua: script.lua, numberOfKeys: script.numberOfKeys });
}
