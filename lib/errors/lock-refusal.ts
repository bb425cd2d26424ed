import { ReplyError } from 'ioredis';
import { RedisPermissionError } from './redis-permission.error.js';
import { RedisTxError } from './redis-tx.error.js';
import { messages } from '../redis-tx.messages.js';
import { processGlobal } from '../shared/process-global.js';

// One per process: an error made by one build of the package is still
// recognised by the other (see shared/process-global.ts).
const refusals = processGlobal('lock-refusals.v1', () => new WeakSet<Error>());
/** NOPERM on the script's own keys, or the ACL refusing a command or key the script calls. */
const deniedByAcl = /^NOPERM|The user executing the script can't/;

/**
 * Turns an error reply of a lock script into the library's error, or returns
 * undefined for anything else (a lost connection). An error reply is a
 * definite answer, unlike a lost one: the connection works and the script
 * did not take the lock, so there is nothing to release and no point in
 * retrying. ioredis hangs the command's arguments on its reply errors, and
 * those include the holder's token, so only the message is kept as cause.
 */
export function lockRefusal(error: unknown, name: string, keyPrefix: string): Error | undefined {
  if (!(error instanceof ReplyError)) return undefined;
  const redisSays = String((error as Error).message);
  const cause = new Error(redisSays);
  const refusal = deniedByAcl.test(redisSays)
    ? new RedisPermissionError(messages.lockPermissionDenied(name, keyPrefix, redisSays), [name], {
        cause,
      })
    : new RedisTxError(messages.lockRefused(name, redisSays), { cause });
  refusals.add(refusal);
  return refusal;
}

/** True for an error made by {@link lockRefusal}: Redis answered, and said no. */
export function isLockRefusal(error: unknown): boolean {
  return error instanceof Error && refusals.has(error);
}
