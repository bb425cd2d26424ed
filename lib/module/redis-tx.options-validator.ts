import { Cluster, Redis } from 'ioredis';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import type { LockDefaults } from '../locks/lock.options.js';
import { messages } from '../redis-tx.messages.js';
import type {
  ClusterConnection,
  RedisTxModuleFactoryOptions,
  ResolvedRedisTxOptions,
  TransactionDefaults,
} from './redis-tx.options.js';

const defaults: Omit<ResolvedRedisTxOptions, 'connection'> = {
  transactions: {
    retries: 5,
    backoff: { initialMs: 5, maxMs: 200 },
    watchConnections: 16,
    readyTimeoutMs: 10_000,
  },
  locks: { ttlMs: 30_000, waitMs: 5_000, keyPrefix: 'lock:', maxKeyLength: 512, pollMs: 1_000 },
  scripts: {},
};

/** Checks every option and merges in the defaults; throws InvalidOptionsError naming the first bad option. */
export function resolveModuleOptions(raw: unknown): ResolvedRedisTxOptions {
  if (!isRecord(raw)) {
    throw new InvalidOptionsError('options', messages.optionInvalid('options', 'an object', raw));
  }
  const options = raw as Partial<RedisTxModuleFactoryOptions>;
  checkConnection(options.connection);
  const tx: TransactionDefaults = options.transactions ?? {};
  if (!isRecord(tx)) fail('transactions', 'an object', tx);
  if (tx.backoff !== undefined && !isRecord(tx.backoff))
    fail('transactions.backoff', 'an object', tx.backoff);
  const resolved: ResolvedRedisTxOptions = {
    connection: options.connection!,
    transactions: {
      retries: integer('transactions.retries', tx.retries, defaults.transactions.retries, 0),
      watchConnections: integer(
        'transactions.watchConnections',
        tx.watchConnections,
        defaults.transactions.watchConnections,
        1,
      ),
      readyTimeoutMs: integer(
        'transactions.readyTimeoutMs',
        tx.readyTimeoutMs,
        defaults.transactions.readyTimeoutMs,
        1,
      ),
      backoff: {
        initialMs: integer(
          'transactions.backoff.initialMs',
          tx.backoff?.initialMs,
          defaults.transactions.backoff.initialMs,
          0,
        ),
        maxMs: integer(
          'transactions.backoff.maxMs',
          tx.backoff?.maxMs,
          defaults.transactions.backoff.maxMs,
          0,
        ),
      },
    },
    locks: checkLocks(options.locks),
    scripts: checkScripts(options.scripts),
  };
  return resolved;
}

function checkConnection(connection: unknown): void {
  if (connection === undefined || connection === null || connection === '') {
    throw new InvalidOptionsError(
      'connection',
      messages.optionRequired('connection', messages.connectionExpected),
    );
  }
  if (typeof connection === 'string') {
    if (!/^rediss?:\/\/./.test(connection)) {
      fail(
        'connection',
        `${messages.connectionExpected} (a URL starts with redis:// or rediss://)`,
        connection,
      );
    }
    return;
  }
  if (connection instanceof Redis || connection instanceof Cluster) return;
  if (!isRecord(connection)) fail('connection', messages.connectionExpected, connection);
  if ('cluster' in connection) {
    const nodes = (connection as Partial<ClusterConnection>).cluster;
    if (!Array.isArray(nodes) || nodes.length === 0) {
      fail('connection.cluster', 'a non-empty array of { host, port } or URLs', nodes);
    }
  }
}

function checkLocks(raw: unknown): ResolvedRedisTxOptions['locks'] {
  const locks: LockDefaults = raw ?? {};
  if (!isRecord(locks)) fail('locks', 'an object', locks);
  const d = defaults.locks;
  const keyPrefix = locks.keyPrefix ?? d.keyPrefix;
  // The lock's name, not the prefix, must pick the Cluster hash slot.
  if (typeof keyPrefix !== 'string' || /[{}]/.test(keyPrefix)) {
    fail('locks.keyPrefix', 'a string without { or }', keyPrefix);
  }
  return {
    ttlMs: integer('locks.ttlMs', locks.ttlMs, d.ttlMs, 1),
    waitMs: integer('locks.waitMs', locks.waitMs, d.waitMs, 0),
    keyPrefix,
    maxKeyLength: integer('locks.maxKeyLength', locks.maxKeyLength, d.maxKeyLength, 1),
    pollMs: integer('locks.pollMs', locks.pollMs, d.pollMs, 1),
  };
}

function checkScripts(scripts: unknown): ResolvedRedisTxOptions['scripts'] {
  if (scripts === undefined) return {};
  if (!isRecord(scripts))
    fail('scripts', 'an object of { lua, numberOfKeys? } by command name', scripts);
  for (const [name, script] of Object.entries(scripts)) {
    if (!/^[A-Za-z_$][\w$]*$/.test(name))
      fail(`scripts.${name}`, 'named like a JavaScript identifier', name);
    if (!isRecord(script) || typeof script.lua !== 'string' || script.lua.trim() === '') {
      fail(
        `scripts.${name}.lua`,
        'a non-empty Lua source string',
        isRecord(script) ? script.lua : script,
      );
    }
    if (script.numberOfKeys !== undefined)
      integer(`scripts.${name}.numberOfKeys`, script.numberOfKeys, 0, 0);
  }
  return scripts as ResolvedRedisTxOptions['scripts'];
}

function integer(option: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    fail(option, `a whole number ≥ ${min}`, value);
  }
  return value;
}

function fail(option: string, expected: string, got: unknown): never {
  throw new InvalidOptionsError(option, messages.optionInvalid(option, expected, got));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
