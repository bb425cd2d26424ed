import { exists, getKeyIndexes } from '@ioredis/commands';
import { slotOf } from '../connection/cluster-slots.js';
import type { QueuedCommand } from '../connection/tx-connection.js';
import { TransactionCrossSlotError, type KeySlot } from '../errors/transaction-cross-slot.error.js';
import { messages } from '../redis-tx.messages.js';

type KeyArgument = string | Buffer | number;

/**
 * The keys a queued command touches, as Redis Cluster sees them: the
 * arguments flattened the way ioredis writes them, then the key positions
 * ioredis itself routes by. Registered scripts must already be turned into
 * EVAL (see RedisConnections.forTransaction), whose numkeys names the keys.
 */
export function commandKeys(command: QueuedCommand, keyPrefix = ''): (string | Buffer)[] {
  let [name, ...args] = command;
  name = name.endsWith('Buffer') ? name.slice(0, -'Buffer'.length) : name;
  if (name === 'call' && typeof args[0] === 'string') [name, ...args] = args as [string];
  name = name.toLowerCase();
  if (!exists(name)) return [];
  const flat = writtenArguments(name, args);
  return getKeyIndexes(name, flat).map((index) => withPrefix(keyPrefix, flat[index]!));
}

/**
 * Refuses, before anything is sent, a Cluster transaction whose keys (queued
 * or watched) live in more than one hash slot: MULTI/EXEC runs on one node,
 * and Redis would reject it there only after some of it was queued. Returns
 * the common slot, or undefined when no command names a key.
 */
export function checkSingleSlot(
  label: string,
  keys: readonly string[],
  commands: readonly QueuedCommand[] = [],
  keyPrefix = '',
): number | undefined {
  const all = [
    ...keys.map((key) => withPrefix(keyPrefix, key)),
    ...commands.flatMap((command) => commandKeys(command, keyPrefix)),
  ];
  const bySlot = new Map<string, KeySlot>();
  for (const key of all) {
    const text = Buffer.isBuffer(key) ? key.toString() : key;
    bySlot.set(text, { key: text, slot: slotOf(key) });
  }
  const slotted = [...bySlot.values()];
  const first = slotted[0];
  if (!first) return undefined;
  if (slotted.every(({ slot }) => slot === first.slot)) return first.slot;
  throw new TransactionCrossSlotError(messages.crossSlot(label, slotted), slotted);
}

/** ioredis flattens array arguments and spreads the object or Map given to MSET/HSET into pairs. */
function writtenArguments(name: string, args: unknown[]): KeyArgument[] {
  const pairsAt =
    name === 'mset' || name === 'msetnx' ? 0 : name === 'hset' || name === 'hmset' ? 1 : -1;
  const spread = args.flatMap((arg, index) => {
    if (index === pairsAt && args.length === pairsAt + 1) return toPairs(arg);
    return Array.isArray(arg) ? (arg as unknown[]) : [arg];
  });
  return spread.map((arg) => (typeof arg === 'number' || Buffer.isBuffer(arg) ? arg : String(arg)));
}

function toPairs(value: unknown): unknown[] {
  if (value instanceof Map) return [...value.entries()].flat();
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return Object.entries(value).flat();
  }
  return Array.isArray(value) ? value : [value];
}

/** The key as the Cluster routes it: ioredis prepends the client's `keyPrefix`, and Buffers keep their bytes. */
function withPrefix(keyPrefix: string, key: KeyArgument): string | Buffer {
  if (Buffer.isBuffer(key)) return keyPrefix ? Buffer.concat([Buffer.from(keyPrefix), key]) : key;
  return keyPrefix + String(key);
}
