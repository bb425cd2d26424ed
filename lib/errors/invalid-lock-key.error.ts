import { RedisTxError } from './redis-tx.error.js';

/** A lock key was empty, not a string, `[object Object]`, or too long. Thrown before Redis is touched. */
export class InvalidLockKeyError extends RedisTxError {}
