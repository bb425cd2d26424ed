import { createHash } from 'node:crypto';
import { Cluster, Command, type Redis } from 'ioredis';
import type { RedisClient } from '../connection/redis-client.js';
import { lockScripts, type LockScriptCommands, type LockScriptReply } from './lock.scripts.js';

type Args = (string | number)[];
type ScriptName = keyof typeof lockScripts;

/**
 * Sends one lock script as a plain EVALSHA, its digest made once here.
 * ioredis's own script wrapper builds a command of a class of its own for
 * every call and rewrites it as it is written; a plain command skips that
 * work on every acquisition and release. ioredis still prefixes the keys (it
 * reads EVALSHA's numkeys) and hands it to the connection's CommandGuard
 * like any other command.
 *
 * The first time on a socket the script goes as EVAL with its source, as
 * ioredis does, so a fresh connection costs no extra round trip (a renewal on
 * a slow link must not take two). A NOSCRIPT reply later (SCRIPT FLUSH, a
 * restart, a failover behind the same socket) means the script did not run:
 * it is sent again, once, as EVAL, which caches it again.
 *
 * On a Cluster the socket is only chosen inside ioredis, by slot: there the
 * script goes through ioredis's wrapper, which tracks each node's socket.
 */
export class LockScriptSender {
  private readonly sha: string;
  private readonly lua: string;
  private readonly numberOfKeys: number;
  /** The sockets that have run this script, so that it is cached on their server. */
  private readonly loadedOn = new WeakSet<object>();

  constructor(private readonly name: ScriptName) {
    ({ lua: this.lua, numberOfKeys: this.numberOfKeys } = lockScripts[name]);
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }

  /** `beforeWrite` runs right before each command goes out (see WriteCoalescer). */
  send(redis: RedisClient, keysThenArgs: Args, beforeWrite: () => void): Promise<LockScriptReply> {
    beforeWrite();
    if (redis instanceof Cluster) {
      return (redis as unknown as LockScriptCommands)[this.name](...keysThenArgs);
    }
    const socket = (redis as { stream?: object | null }).stream;
    if (!socket || !this.loadedOn.has(socket)) {
      if (socket) this.loadedOn.add(socket);
      return this.issue(redis, 'eval', this.lua, keysThenArgs);
    }
    return this.issue(redis, 'evalsha', this.sha, keysThenArgs).then(
      undefined,
      (error: unknown) => {
        if (!isNoScript(error)) throw error;
        beforeWrite();
        return this.issue(redis, 'eval', this.lua, keysThenArgs);
      },
    );
  }

  /**
   * Made and sent as ioredis's own command methods do, less their work on
   * arguments: the command flattens the list nested in it into the one copy
   * it keeps, and prefixes the keys it finds through numkeys.
   */
  private issue(
    redis: Redis,
    name: 'eval' | 'evalsha',
    script: string,
    keysThenArgs: Args,
  ): Promise<LockScriptReply> {
    const { keyPrefix, showFriendlyErrorStack } = redis.options;
    const command = new Command(name, [script, this.numberOfKeys, keysThenArgs], {
      keyPrefix,
      replyEncoding: 'utf8',
      errorStack: showFriendlyErrorStack ? new Error() : undefined,
    });
    return redis.sendCommand(command) as Promise<LockScriptReply>;
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/** One sender per lock script, by the name it is registered under. */
export const lockScriptSenders = Object.fromEntries(
  Object.keys(lockScripts).map((name) => [name, new LockScriptSender(name as ScriptName)]),
) as Record<ScriptName, LockScriptSender>;
