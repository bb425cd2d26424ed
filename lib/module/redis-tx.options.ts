import type { ModuleMetadata, InjectionToken, OptionalFactoryDependency } from '@nestjs/common';
import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { LockDefaults, RedlockOptions } from '../locks/lock.options.js';

/** Nodes of a Redis Cluster, and ioredis Cluster options. */
export interface ClusterConnection {
  cluster: ClusterNode[];
  options?: ClusterOptions;
}

/**
 * Where the module connects: a URL, ioredis options (a `sentinels` list makes
 * it a Sentinel connection), a cluster description, or an existing client that
 * the module uses but never closes.
 */
export type RedisConnectionOption = string | RedisOptions | ClusterConnection | Redis | Cluster;

/** A Lua script made callable as a command on `RedisTx.client` and `RedisTx.multi`. */
export interface RedisScript {
  lua: string;
  /** How many leading arguments are keys. Omit to pass the key count as the first argument. */
  numberOfKeys?: number;
}

export interface TransactionDefaults {
  /** Re-runs of a WATCH transaction after a conflict, beyond the first attempt. Default 5. */
  retries?: number;
  /** Exponential backoff with full jitter between attempts. Defaults 5 ms and 200 ms. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Most isolated connections kept for WATCH transactions at once. Default 16. */
  watchConnections?: number;
  /** How long a transaction waits for a (re)connecting connection before giving up unsent. Default 10 000 ms. */
  readyTimeoutMs?: number;
}

/** How the library's errors answer HTTP requests (see `docs/http.md`). */
export interface HttpOptions {
  /**
   * Add the refused lock's names to the body of an HTTP answer to
   * `LockNotAcquiredError` (as `locks`). Off by default: a lock's name can
   * tell a client about the application's internals or other users' data.
   */
  exposeLockNames?: boolean;
}

export interface RedisTxModuleOptions {
  connection: RedisConnectionOption;
  /** Register the module globally. Default true. */
  isGlobal?: boolean;
  transactions?: TransactionDefaults;
  locks?: LockDefaults;
  /** Lua scripts, by command name. */
  scripts?: Record<string, RedisScript>;
  /**
   * The longest the library waits for Redis to answer one command on a
   * connection it owns. A connection silent for longer is dropped, and every
   * command on it fails typed. Default 5 000 ms.
   */
  commandTimeoutMs?: number;
  /**
   * How long `app.close()` lets work in flight (transactions, running lock
   * holders, releases) finish before it stops waiting. Default 5 000 ms.
   */
  shutdownTimeoutMs?: number;
  /** How errors answer HTTP requests. */
  http?: HttpOptions;
}

/** Options once defaults are merged in. */
export interface ResolvedRedisTxOptions {
  connection: RedisConnectionOption;
  transactions: Required<Omit<TransactionDefaults, 'backoff'>> & {
    backoff: { initialMs: number; maxMs: number };
  };
  locks: Required<Omit<LockDefaults, 'redlock'>> & { redlock?: Required<RedlockOptions> };
  scripts: Record<string, RedisScript>;
  commandTimeoutMs: number;
  shutdownTimeoutMs: number;
  http: Required<HttpOptions>;
}

export type RedisTxModuleFactoryOptions = Omit<RedisTxModuleOptions, 'isGlobal'>;

export interface RedisTxModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  isGlobal?: boolean;
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  useFactory: (
    ...args: never[]
  ) => RedisTxModuleFactoryOptions | Promise<RedisTxModuleFactoryOptions>;
}
