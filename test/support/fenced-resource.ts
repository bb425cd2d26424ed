import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** The Lua source, shared with the forked workers (which read the same file). */
export const fencedWriteLua = readFileSync(
  new URL('../faults/fixtures/fenced-write.lua', `file://${__filename}`),
  'utf8',
);

/** The Redis keys of a fenced resource named `name`, in the order the script takes them. */
export function fencedResourceKeys(name: string): [string, string, string, string] {
  const base = `fenced:{${name}}`;
  return [`${base}:value`, `${base}:token`, `${base}:accepted`, `${base}:rejected`];
}

/**
 * A resource kept in Redis that accepts a write only with a fencing token
 * higher than the last one it accepted, as the locks guide recommends: the check
 * that turns a paused holder's late write into a refused one.
 */
export class FencedResource {
  private readonly keys: [string, string, string, string];

  constructor(
    private readonly redis: Redis,
    readonly name: string,
  ) {
    this.keys = fencedResourceKeys(name);
  }

  /** True when the resource took the write. */
  async write(token: number, value: string): Promise<boolean> {
    const reply = await this.redis.eval(fencedWriteLua, 4, ...this.keys, token, value);
    return reply === 1;
  }

  async state(): Promise<{
    value: string | null;
    token: number;
    accepted: number;
    rejected: number;
  }> {
    const [value, token, accepted, rejected] = await this.redis.mget(...this.keys);
    return {
      value: value ?? null,
      token: Number(token ?? 0),
      accepted: Number(accepted ?? 0),
      rejected: Number(rejected ?? 0),
    };
  }
}
