import type { Redis } from 'ioredis';
import { nextSettling } from '../../connection/redis-client.js';
import { messages } from '../../redis-tx.messages.js';
import { RedlockNodeError } from './redlock-node.error.js';
import type { RedlockCommands } from './redlock.scripts.js';

/**
 * One Redlock master, on a connection the module owns: it never resends a
 * command whose reply was lost and never queues one while disconnected, so a
 * master that is down or frozen fails its part of a vote within a bound
 * instead of holding the others up.
 */
export class RedlockNode {
  private connectedOnce = false;
  private connecting?: Promise<'ready' | 'close' | 'end'>;

  constructor(
    readonly client: Redis,
    /** `host:port`, or the Sentinel master name: never credentials. */
    readonly label: string,
  ) {
    client.on('ready', () => {
      this.connectedOnce = true;
    });
  }

  /** Runs `command` on this master; rejects with RedlockNodeError when it is down or gives no reply within `timeoutMs`. */
  async send<T>(command: (redis: RedlockCommands) => Promise<T>, timeoutMs: number): Promise<T> {
    const started = performance.now();
    if (this.client.status !== 'ready') await this.firstConnection(timeoutMs);
    const left = Math.max(0, timeoutMs - (performance.now() - started));
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        command(this.client as unknown as RedlockCommands).catch((error: unknown) => {
          throw new RedlockNodeError(
            this.label,
            messages.redlockNodeFailed(this.label, errorText(error)),
            { cause: error },
          );
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new RedlockNodeError(
                  this.label,
                  messages.redlockNodeNoReply(this.label, timeoutMs),
                ),
              ),
            left,
          );
          timer.unref();
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Right after the module starts, a master may still be connecting: wait
   * for it within the same bound. A master that was connected and is not
   * now, or whose first attempt failed, is down: waiting for it would only
   * hold up the vote.
   */
  private async firstConnection(timeoutMs: number): Promise<void> {
    const { status } = this.client;
    const down = () =>
      new RedlockNodeError(this.label, messages.redlockNodeDown(this.label, status));
    const connecting = status === 'wait' || status === 'connecting' || status === 'connect';
    if (this.connectedOnce || !connecting) throw down();
    // One wait for every caller: concurrent acquisitions share it.
    this.connecting ??= nextSettling(this.client).finally(() => {
      this.connecting = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const event = await Promise.race([
        this.connecting,
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
          timer.unref();
        }),
      ]);
      // Anything but 'ready': closed at shutdown, the attempt failed, or too slow.
      if (event !== 'ready') throw down();
    } finally {
      clearTimeout(timer);
    }
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
