import type { ScriptMode } from '../held-lock.js';
import { newToken } from '../lock-token.js';

/**
 * A holder's token on Redis: the secret random part, then what the lock's
 * scripts and `inspect()` read from it without a key of their own:
 * `<secret>@<application>.<asked at, epoch ms>.<permits>.<mode>.<ttlMs>`.
 * The release script reads the mode and lease of the head of the line from
 * the last two fields, and from the application which channel to announce a
 * hand-off on; `inspect()` reads when the holder (or waiter) first asked and,
 * for a semaphore, how many permits it asked for. Only the secret part is
 * secret; nothing else in it is.
 */
export function holderToken(
  mode: ScriptMode,
  ttlMs: number,
  permits: number,
  application = '0',
): string {
  return `${newToken()}@${application}.${Date.now()}.${permits}.${mode}.${ttlMs}`;
}

/**
 * A name for one application's lock store, unique enough that hand-offs
 * meant for another application almost never reach it (and when they do,
 * they name no token it waits for, so they are ignored).
 */
export function newApplicationId(): string {
  return newToken().slice(0, 12);
}

/** In Lua: `local askedAt, permits = string.match(token, …)` over a token made by {@link holderToken}. */
export const holderTokenFieldsLua = `'%.(%d+)%.(%d+)%.%a%.%d+$'`;

const fields = /\.(\d+)\.(\d+)\.[a-z]\.\d+$/;

/** What a token made by {@link holderToken} says besides its secret: when it was first used, and the permits asked for. */
export function holderTokenFacts(token: string): { askedAt?: number; permits?: number } {
  const match = fields.exec(token);
  return match ? { askedAt: Number(match[1]), permits: Number(match[2]) } : {};
}
