import type { RedisConnections } from '../../connection/redis-connections.js';
import type { LockLossReason } from '../../errors/lock-lost.error.js';
import { RedisTxError } from '../../errors/redis-tx.error.js';
import { lockRefusal } from '../../errors/lock-refusal.js';
import { messages } from '../../redis-tx.messages.js';
import type { HeldPart } from '../held-lock.js';
import { lockRedisKeys, type LockRedisKeys } from '../lock-keys.js';
import type { LockSlotKeys } from '../lock-slot-keys.js';
import { evictionId, evictionsKey } from './eviction-keys.js';
import { lockAdminScripts } from './lock-admin.scripts.js';
import {
  LOCK_INSPECT_MAX_WAITERS,
  type ForceReleaseResult,
  type LockInspection,
} from './lock-inspection.js';
import { readInspection } from './read-inspection.js';

/**
 * Inspection and forced release of locks on the module's own Redis (a node,
 * through Sentinel, or a Cluster), on the lock connection, which never
 * resends a command whose reply was lost: a forced release runs once or
 * fails typed. Rare operator calls, so the scripts go out as EVAL.
 */
export class NodeLockAdmin {
  constructor(
    private readonly connections: RedisConnections,
    private readonly keyPrefix: string,
    private readonly slotKeys: LockSlotKeys,
    private readonly readyTimeoutMs: number,
  ) {}

  async inspect(name: string): Promise<LockInspection> {
    const keys = lockRedisKeys(this.keyPrefix, name);
    const { lua, numberOfKeys } = lockAdminScripts.inspect;
    const reply = (await this.run(name, (redis) =>
      redis.eval(lua, numberOfKeys, ...lockStateKeys(keys), LOCK_INSPECT_MAX_WAITERS),
    )) as (string | number)[];
    return readInspection(name, reply);
  }

  async forceRelease(name: string): Promise<ForceReleaseResult> {
    const keys = lockRedisKeys(this.keyPrefix, name);
    const { lua, numberOfKeys } = lockAdminScripts.forceRelease;
    const [evicted, fencingToken] = (await this.run(name, (redis) =>
      redis.eval(
        lua,
        numberOfKeys,
        ...lockStateKeys(keys),
        this.slotKeys.fence(keys),
        evictionsKey(keys),
        this.slotKeys.channelBase(keys),
        this.slotKeys.sharded ? 'SPUBLISH' : 'PUBLISH',
      ),
    )) as [number, number];
    return { key: name, evicted: Number(evicted), fencingToken: Number(fencingToken) };
  }

  /** Why a part this process held is gone: evicted by forceRelease(), or else its lease ended. */
  async lossReason(part: HeldPart): Promise<LockLossReason> {
    const evicted = await this.run(part.name, (redis) =>
      redis.sismember(evictionsKey(part.keys), evictionId(part.token)),
    );
    return evicted === 1 ? 'force-released' : 'lease-expired';
  }

  private async run<T>(
    name: string,
    command: (redis: RedisConnections['locks']['redis']) => Promise<T>,
  ): Promise<T> {
    const connection = this.connections.locks;
    await connection.whenReady(this.readyTimeoutMs, `lock "${name}"`);
    try {
      return await command(connection.redis);
    } catch (error) {
      throw (
        lockRefusal(error, name, this.keyPrefix) ??
        new RedisTxError(messages.lockConnectionFailed(name), { cause: error })
      );
    }
  }
}

/**
 * The keys of a lock's state in the order both admin scripts take them
 * first (see lock-admin.scripts.ts): the writer, the readers, the permits,
 * the line and the line's leases.
 */
function lockStateKeys(keys: LockRedisKeys): string[] {
  return [keys.writer, keys.readers, keys.permits, keys.queue, keys.waiterLeases];
}
