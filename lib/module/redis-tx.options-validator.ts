import { Cluster, Redis } from 'ioredis';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import type { LockDefaults, RedlockConnection, RedlockOptions } from '../locks/lock.options.js';
import { optionKeys, refuseUnknownKeys } from '../options/known-keys.js';
import { messages } from '../redis-tx.messages.js';
import type {
  ClusterConnection,
  HttpOptions,
  RedisTxModuleFactoryOptions,
  RedisTxModuleOptions,
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
  locks: {
    ttlMs: 30_000,
    waitMs: 5_000,
    keyPrefix: 'lock:',
    maxKeyLength: 512,
    pollMs: 1_000,
    replicaAcks: 0,
    replicaAckTimeoutMs: 100,
  },
  scripts: {},
  commandTimeoutMs: 5_000,
  shutdownTimeoutMs: 5_000,
  http: { exposeLockNames: false },
};

const moduleKeys = optionKeys<RedisTxModuleOptions>({
  connection: true,
  isGlobal: true,
  transactions: true,
  locks: true,
  scripts: true,
  commandTimeoutMs: true,
  shutdownTimeoutMs: true,
  http: true,
});
const factoryKeys = moduleKeys.filter((key) => key !== 'isGlobal');
const transactionKeys = optionKeys<TransactionDefaults>({
  retries: true,
  backoff: true,
  watchConnections: true,
  readyTimeoutMs: true,
});
const backoffKeys = optionKeys<NonNullable<TransactionDefaults['backoff']>>({
  initialMs: true,
  maxMs: true,
});
const lockKeys = optionKeys<LockDefaults>({
  ttlMs: true,
  waitMs: true,
  keyPrefix: true,
  maxKeyLength: true,
  pollMs: true,
  replicaAcks: true,
  replicaAckTimeoutMs: true,
  redlock: true,
});
const httpKeys = optionKeys<HttpOptions>({ exposeLockNames: true });
const redlockKeys = optionKeys<RedlockOptions>({ connections: true, clockDriftFactor: true });

/**
 * Checks every option and merges in the defaults; throws InvalidOptionsError
 * naming the first bad or unknown option. `from` says where the options came
 * from: `forRoot()` takes `isGlobal` among them, a `forRootAsync()` factory
 * does not (the module is registered before it runs).
 */
export function resolveModuleOptions(
  raw: unknown,
  from: 'forRoot' | 'factory' = 'forRoot',
): ResolvedRedisTxOptions {
  if (!isRecord(raw)) {
    throw new InvalidOptionsError('options', messages.optionInvalid('options', 'an object', raw));
  }
  if (from === 'factory') {
    refuseUnknownKeys(raw, factoryKeys, 'RedisTxModule', '', {
      isGlobal: messages.optionInFactoryResult,
    });
  } else {
    refuseUnknownKeys(raw, moduleKeys, 'RedisTxModule');
  }
  const options = raw as Partial<RedisTxModuleFactoryOptions>;
  checkConnection(options.connection);
  const tx: TransactionDefaults = options.transactions ?? {};
  if (!isRecord(tx)) fail('transactions', 'an object', tx);
  refuseUnknownKeys(tx, transactionKeys, 'RedisTxModule', 'transactions.');
  if (tx.backoff !== undefined && !isRecord(tx.backoff))
    fail('transactions.backoff', 'an object', tx.backoff);
  if (tx.backoff)
    refuseUnknownKeys(tx.backoff, backoffKeys, 'RedisTxModule', 'transactions.backoff.');
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
    commandTimeoutMs: integer(
      'commandTimeoutMs',
      options.commandTimeoutMs,
      defaults.commandTimeoutMs,
      1,
    ),
    shutdownTimeoutMs: integer(
      'shutdownTimeoutMs',
      options.shutdownTimeoutMs,
      defaults.shutdownTimeoutMs,
      0,
    ),
    http: checkHttp(options.http),
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
        withoutCredentials(connection),
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

function checkHttp(raw: unknown): ResolvedRedisTxOptions['http'] {
  if (raw === undefined) return { ...defaults.http };
  if (!isRecord(raw)) fail('http', 'an object', raw);
  refuseUnknownKeys(raw, httpKeys, 'RedisTxModule', 'http.');
  const { exposeLockNames = defaults.http.exposeLockNames } = raw as HttpOptions;
  if (typeof exposeLockNames !== 'boolean') {
    fail('http.exposeLockNames', 'true or false', exposeLockNames);
  }
  return { exposeLockNames };
}

function checkLocks(raw: unknown): ResolvedRedisTxOptions['locks'] {
  const locks: LockDefaults = raw ?? {};
  if (!isRecord(locks)) fail('locks', 'an object', locks);
  refuseUnknownKeys(locks, lockKeys, 'RedisTxModule', 'locks.');
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
    replicaAcks: checkReplicaAcks(locks),
    replicaAckTimeoutMs: integer(
      'locks.replicaAckTimeoutMs',
      locks.replicaAckTimeoutMs,
      d.replicaAckTimeoutMs,
      1,
    ),
    ...(locks.redlock === undefined ? {} : { redlock: checkRedlock(locks.redlock) }),
  };
}

/** WAIT needs one master holding the lock: a quorum of masters (Redlock) has none. */
function checkReplicaAcks(locks: LockDefaults): number {
  const replicaAcks = integer(
    'locks.replicaAcks',
    locks.replicaAcks,
    defaults.locks.replicaAcks,
    0,
  );
  if (replicaAcks > 0 && locks.redlock !== undefined) {
    throw new InvalidOptionsError(
      'locks.replicaAcks',
      messages.replicaAcksUnsupported('RedisTxModule: option `locks.replicaAcks`'),
    );
  }
  return replicaAcks;
}

/** Redlock's safety rests on a majority of independent masters: each entry must be one master, and a different one. */
function checkRedlock(raw: unknown): NonNullable<ResolvedRedisTxOptions['locks']['redlock']> {
  if (!isRecord(raw)) fail('locks.redlock', 'an object: { connections, clockDriftFactor? }', raw);
  refuseUnknownKeys(raw, redlockKeys, 'RedisTxModule', 'locks.redlock.');
  const { connections, clockDriftFactor = 0.01 } = raw as Partial<RedlockOptions>;
  if (!Array.isArray(connections) || connections.length < 3) {
    const count = Array.isArray(connections) ? connections.length : undefined;
    throw new InvalidOptionsError(
      'locks.redlock.connections',
      messages.redlockTooFewMasters(count, connections),
    );
  }
  const seen = new Map<unknown, number>();
  connections.forEach((connection: unknown, index) => {
    const option = `locks.redlock.connections[${index}]`;
    // A Redis instance has a `cluster` method, so only a plain object is a cluster description.
    const describesCluster =
      isRecord(connection) && !(connection instanceof Redis) && 'cluster' in connection;
    if (connection instanceof Cluster || describesCluster) {
      fail(option, messages.redlockMasterExpected, connection);
    }
    if (typeof connection === 'string' && !/^rediss?:\/\/./.test(connection)) {
      fail(
        option,
        `${messages.redlockMasterExpected} (a URL starts with redis:// or rediss://)`,
        withoutCredentials(connection),
      );
    }
    if (typeof connection !== 'string' && !isRecord(connection) && !(connection instanceof Redis)) {
      fail(option, messages.redlockMasterExpected, connection);
    }
    const address = masterAddress(connection as RedlockConnection);
    const earlier = seen.get(address);
    if (earlier !== undefined) {
      throw new InvalidOptionsError(option, messages.redlockSameMaster(option, earlier));
    }
    seen.set(address, index);
  });
  if (
    typeof clockDriftFactor !== 'number' ||
    !Number.isFinite(clockDriftFactor) ||
    clockDriftFactor < 0 ||
    clockDriftFactor >= 0.5
  ) {
    fail(
      'locks.redlock.clockDriftFactor',
      'a number ≥ 0 and below 0.5, such as 0.01',
      clockDriftFactor,
    );
  }
  return { connections: connections as RedlockConnection[], clockDriftFactor };
}

/** What tells two masters apart: host and port where known (two databases of one server are one master), else the entry itself. */
function masterAddress(connection: RedlockConnection): unknown {
  if (typeof connection === 'string') {
    try {
      const url = new URL(connection);
      return `${url.hostname}:${url.port || 6379}`;
    } catch {
      return connection;
    }
  }
  const options = connection instanceof Redis ? connection.options : connection;
  if (options.sentinels || options.path) return connection;
  return `${options.host ?? 'localhost'}:${options.port ?? 6379}`;
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

/** A URL as it may be shown: its user-info part (`user:password@`) could hold a secret. */
function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][\w+.-]*:\/*)?.*@/i, '$1***@');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
