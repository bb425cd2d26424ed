import { once } from 'node:events';
import type { RedisConnections } from '../connection/redis-connections.js';

export type WakeReason = 'release' | 'poll' | 'aborted';

/**
 * Wakes waiters when the lock they wait for is handed to them. A release
 * publishes the token of the next waiter in line on one channel; this single
 * subscription serves every waiter of the module, so a wake-up costs no
 * command and wakes no one else.
 */
export class ReleaseListener {
  private readonly waiters = new Map<string, () => void>();
  private subscribed?: Promise<void>;

  constructor(
    private readonly connections: RedisConnections,
    readonly channel: string,
  ) {}

  /** Resolves once subscribed, so that no hand-off published after it can be missed. */
  start(): Promise<void> {
    this.subscribed ??= (async () => {
      const subscriber = this.connections.subscriber;
      subscriber.on('message', (channel: string, token: string) => {
        if (channel === this.channel) this.waiters.get(token)?.();
      });
      await subscriber.subscribe(this.channel);
    })();
    return this.subscribed;
  }

  /** Waits until the token is called, `pollMs` passes (the fallback for a lost message), or the signal aborts. */
  async wait(token: string, pollMs: number, signal: AbortSignal): Promise<WakeReason> {
    if (signal.aborted) return 'aborted';
    const gaveUp = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        new Promise<WakeReason>((resolve) => this.waiters.set(token, () => resolve('release'))),
        new Promise<WakeReason>((resolve) => {
          timer = setTimeout(() => resolve('poll'), pollMs);
        }),
        once(signal, 'abort', { signal: gaveUp.signal }).then(
          (): WakeReason => 'aborted',
          (): WakeReason => 'aborted',
        ),
      ]);
    } finally {
      this.waiters.delete(token);
      clearTimeout(timer);
      gaveUp.abort();
    }
  }
}
