// The scripts run on each Redlock master. Each runs atomically on its
// master, and every change is guarded by the holder's token, so no holder
// can extend or release a lock it does not hold on that master.

/**
 * KEYS: lock, fence. ARGV: token, key ttl in ms.
 * Sets the lock if free and then counts the master's fencing counter, so the
 * count only moves for an acquisition. Returns the count, or 0 when busy.
 */
const acquire = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`;

/**
 * KEYS: fence. ARGV: the highest fencing token a quorum handed out.
 * Lifts this master's counter to it, never lowers it: once a majority is at
 * least there, any later quorum shares a master with it and counts higher.
 */
const raiseFence = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`;

/** KEYS: lock. ARGV: token, key ttl in ms. 1 when renewed, 0 when this master no longer holds it for the token. */
const extend = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

/**
 * KEYS: lock. ARGV: token, channel, lock name.
 * Deletes the lock if the token still holds it, and tells waiters on every
 * master's channel that it is free here. 1 when deleted, 0 otherwise.
 */
const release = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`;

export const redlockScripts = {
  nestjsRedisTxRedlockAcquire: { lua: acquire, numberOfKeys: 2 },
  nestjsRedisTxRedlockRaiseFence: { lua: raiseFence, numberOfKeys: 1 },
  nestjsRedisTxRedlockExtend: { lua: extend, numberOfKeys: 1 },
  nestjsRedisTxRedlockRelease: { lua: release, numberOfKeys: 1 },
};

/** The scripts as ioredis adds them to a client made with `scripts: redlockScripts`. */
export interface RedlockCommands {
  nestjsRedisTxRedlockAcquire(
    lock: string,
    fence: string,
    token: string,
    ttlMs: number,
  ): Promise<number>;
  nestjsRedisTxRedlockRaiseFence(fence: string, atLeast: number): Promise<number>;
  nestjsRedisTxRedlockExtend(lock: string, token: string, ttlMs: number): Promise<number>;
  nestjsRedisTxRedlockRelease(
    lock: string,
    token: string,
    channel: string,
    name: string,
  ): Promise<number>;
  exists(key: string): Promise<number>;
}
