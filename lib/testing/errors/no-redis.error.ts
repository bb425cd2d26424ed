import { RedisTxError } from '../../errors/redis-tx.error.js';

/** A transaction (or the Redis client) was used in a RedisTxTestingModule started without Redis (`redis: false`). */
export class NoRedisInTestError extends RedisTxError {}
