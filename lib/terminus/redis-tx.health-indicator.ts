import { once } from 'node:events';
import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { RedisConnections } from '../connection/redis-connections.js';
import type { RedisClient } from '../connection/redis-client.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { RedlockNodes } from '../locks/redlock/redlock.nodes.js';
import { LockService } from '../locks/lock.service.js';
import { messages } from '../redis-tx.messages.js';
import { locksHeldTooLong } from './lock-age.check.js';
import type { RedisTxLockAgeOptions } from './lock-age.options.js';

export interface RedisTxHealthOptions {
  /** How long each connection has to answer PING before it counts as down. 1 000 ms. */
  timeoutMs?: number;
}

/** Each connection's state, by role: `shared`, `transactions`, `locks`, `subscriber`, `redlock <host:port>`. */
export type RedisTxConnectionStates = Record<string, 'up' | 'down'>;

const DEFAULT_TIMEOUT_MS = 1_000;

/**
 * A `@nestjs/terminus` health indicator for the connections of RedisTxModule:
 * it PINGs, all at once, the shared client, the transaction, lock and
 * subscriber connections the module has opened so far, and each Redlock
 * master, and is up only when every one answers in time. Connections are
 * named by role or host:port, never by URL, so no credentials show.
 */
@Injectable()
export class RedisTxHealthIndicator {
  /** Created by Nest's dependency injection: inject the class, never construct it. @internal */
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly connections: RedisConnections,
    private readonly redlock: RedlockNodes,
    private readonly locks: LockService,
  ) {}

  /**
   * Down when a lock has been held longer than `maxHeldMs`: a holder that is
   * stuck (alive enough to renew, but not finishing). Checks the lock names
   * in `keys` (one inspect each), or else SCANs the lock key prefix, looking
   * at `maxScannedKeys` keys at most (bounded work on a large keyspace; the
   * details say whether the scan was `complete`). The details list each
   * overdue lock (name, mode, how long held, a writer's fencing token),
   * never a token. Held time counts from when the holder first asked (see
   * LockService.inspect). Not available with `locks.redlock`
   * (InvalidOptionsError, as inspect()).
   *
   * @throws InvalidOptionsError for a wrong option, naming it.
   */
  async locksHeldWithin<const Key extends string = 'locks'>(
    key: Key,
    options: RedisTxLockAgeOptions,
  ): Promise<HealthIndicatorResult<Key>> {
    const details = await locksHeldTooLong(
      this.locks,
      this.connections.shared,
      this.locks.keyPrefix,
      options,
    );
    const session = this.health.check(key);
    const { checked, complete, overdue } = details;
    const data = { checked, complete, overdue };
    return overdue.length === 0 ? session.up(data) : session.down(data);
  }

  async isHealthy<const Key extends string = 'redis'>(
    key: Key = 'redis' as Key,
    options: RedisTxHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const timeoutMs = checkTimeout(options.timeoutMs);
    const targets: [string, RedisClient][] = [
      ...this.connections.opened(),
      ...this.redlock.all.map((node): [string, RedisClient] => [
        `redlock ${node.label}`,
        node.client,
      ]),
    ];
    const answered = await Promise.all(targets.map(([, client]) => answersPing(client, timeoutMs)));
    const states: RedisTxConnectionStates = {};
    targets.forEach(([role], i) => (states[role] = answered[i] ? 'up' : 'down'));
    const session = this.health.check(key);
    return answered.every(Boolean) ? session.up(states) : session.down(states);
  }
}

/**
 * Whether `client` answers PING within `timeoutMs`, counting a connection
 * that is still (re)connecting as up if it gets there in time. A late reply
 * or error is dropped, never left unhandled.
 */
async function answersPing(client: RedisClient, timeoutMs: number): Promise<boolean> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  const timedOut = new Promise<boolean>((resolve) =>
    deadline.signal.addEventListener('abort', () => resolve(false), { once: true }),
  );
  const pinged = (async () => {
    if (client.status !== 'ready') await once(client, 'ready', { signal: deadline.signal });
    await client.ping();
    return true;
  })().catch(() => false);
  try {
    return await Promise.race([pinged, timedOut]);
  } finally {
    clearTimeout(timer);
    deadline.abort();
  }
}

function checkTimeout(timeoutMs: unknown): number {
  if (timeoutMs === undefined) return DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new InvalidOptionsError(
      'timeoutMs',
      messages.optionInvalid(
        'timeoutMs',
        'a whole number ≥ 1',
        timeoutMs,
        'RedisTxHealthIndicator.isHealthy()',
      ),
    );
  }
  return timeoutMs;
}
