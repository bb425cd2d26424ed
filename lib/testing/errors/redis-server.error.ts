import { RedisTxError } from '../../errors/redis-tx.error.js';

/** A throwaway redis-server could not be started: not found on the PATH, exited, or not ready in time. The message says which. */
export class RedisServerError extends RedisTxError {}
