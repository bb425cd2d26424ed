import type { Result } from 'ioredis';

/**
 * A fenced resource: a hash that keeps, in its `fence` field, the
 * highest fencing token that has read or written it. Reading raises that
 * field to the reader's token, so once a newer holder has read, an older
 * holder that read before it (and was then paused past its lease) is refused
 * when it writes what it computed from its now stale read. Fencing writes
 * alone would let that older write in if it came before the newer holder's
 * write, and the newer holder would then overwrite it: a lost update.
 *
 * Both refuse a token below the stored one with a `STALE` error reply; an
 * equal token is the same holder reading, then writing.
 */
export const fencingScripts = {
  /** `readFenced(key, token, field)`: the field's value, after raising the hash's token to `token`. */
  readFenced: {
    numberOfKeys: 1,
    lua: `local seen = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) < seen then return redis.error_reply('STALE fencing token ' .. ARGV[1] .. ' < ' .. seen) end
redis.call('HSET', KEYS[1], 'fence', ARGV[1])
return redis.call('HGET', KEYS[1], ARGV[2])`,
  },
  /** `writeFenced(key, token, field, value, …)`: sets the fields and the token; 1 when written. */
  writeFenced: {
    numberOfKeys: 1,
    lua: `local seen = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) < seen then return redis.error_reply('STALE fencing token ' .. ARGV[1] .. ' < ' .. seen) end
redis.call('HSET', KEYS[1], 'fence', unpack(ARGV))
return 1`,
  },
};

declare module 'ioredis' {
  interface RedisCommander<Context> {
    readFenced(key: string, token: number, field: string): Result<string | null, Context>;
    writeFenced(
      key: string,
      token: number,
      ...fieldsAndValues: (string | number)[]
    ): Result<1, Context>;
  }
}

/** Whether `error` is a fenced script's refusal of an older holder. */
export function isStaleHolder(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('STALE fencing token');
}
