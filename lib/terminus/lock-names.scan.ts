import { Cluster, type Redis } from 'ioredis';
import type { RedisClient } from '../connection/redis-client.js';

/** How many keys one SCAN call is asked to look at. */
const SCAN_BATCH = 200;

/** The lock names found under a key prefix, and whether the scan saw every key. */
export interface ScannedLockNames {
  names: string[];
  complete: boolean;
}

/**
 * Finds the names of locks that have holders, by SCANning the lock key
 * prefix (on every master of a Cluster) and stopping after `maxKeys` keys:
 * bounded work however many locks there are, and no KEYS. Only holder keys
 * count (the writer key and the reader and permit sets); the line, the
 * fencing counters and the hand-off channel are skipped.
 */
export async function scanLockNames(
  client: RedisClient,
  keyPrefix: string,
  maxKeys: number,
): Promise<ScannedLockNames> {
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
  // SCAN's pattern and replies are raw keys: ioredis adds its own keyPrefix to neither.
  keyPrefix = `${ioredisKeyPrefix(client)}${keyPrefix}`;
  const names = new Set<string>();
  let seen = 0;
  let complete = true;
  const holderKey = new RegExp(`^${escapeRegExp(keyPrefix)}\\{(.*)\\}(?::r|:s)?$`, 's');
  for (const node of nodes) {
    let cursor = '0';
    do {
      if (seen >= maxKeys) {
        complete = false;
        break;
      }
      const [next, keys] = await node.scan(
        cursor,
        'MATCH',
        `${escapeGlob(keyPrefix)}{*`,
        'COUNT',
        Math.min(SCAN_BATCH, maxKeys - seen),
      );
      cursor = next;
      // COUNT is a hint: a reply may carry more keys than asked for.
      const taken = keys.slice(0, maxKeys - seen);
      if (taken.length < keys.length) complete = false;
      seen += taken.length;
      for (const key of taken) {
        const name = holderKey.exec(key)?.[1];
        // A leading backslash was added to names that start with `}` or `\` (see lock-keys.ts).
        if (name !== undefined) names.add(/^\\[}\\]/.test(name) ? name.slice(1) : name);
      }
    } while (cursor !== '0');
  }
  return { names: [...names].sort(), complete };
}

function ioredisKeyPrefix(client: RedisClient): string {
  if (client instanceof Cluster) {
    return client.options.keyPrefix ?? client.options.redisOptions?.keyPrefix ?? '';
  }
  return client.options.keyPrefix ?? '';
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
