import { once } from 'node:events';
import type { RedisConnections } from '../connection/redis-connections.js';

/** Why a wait ended: the lock was handed over (with its fencing token), a release woke it to try, the poll timer, or the signal. */
export type Wake =
  { reason: 'granted'; fence: number } | { reason: 'release' | 'poll' | 'aborted' };

/**
 * Wakes waiters when the lock they wait for is handed to them. A release
 * publishes the token of the next waiter in line on one channel (with the
 * fencing token when it handed the lock over); this single subscription
 * serves every waiter of the module, so a wake-up costs no command and wakes
 * no one else.
 */
export class ReleaseListener {
  private readonly waiters = new Map<string, (fence: number | undefined) => void>();
  private subscribed?: Promise<void>;

  constructor(
    private readonly connections: RedisConnections,
    readonly channel: string,
  ) {}

  /** Resolves once subscribed, so that no hand-off published after it can be missed. */
  start(): Promise<void> {
    this.subscribed ??= (async () => {
      const subscriber = this.connections.subscriber;
      // The message is the waiter's token, followed by its fencing token when the lock was handed over.
      subscriber.on('message', (channel: string, message: string) => {
        if (channel !== this.channel) return;
        const [token, fence] = message.split(' ');
        this.waiters.get(token!)?.(fence === undefined ? undefined : Number(fence));
      });
      await subscriber.subscribe(this.channel);
    })();
    return this.subscribed;
  }

  /** Waits until the token is called, `pollMs` passes (the fallback for a lost message), or the signal aborts. */
  async wait(token: string, pollMs: number, signal: AbortSignal): Promise<Wake> {
    if (signal.aborted) return { reason: 'aborted' };
    const gaveUp = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        new Promise<Wake>((resolve) =>
          this.waiters.set(token, (fence) =>
            resolve(fence === undefined ? { reason: 'release' } : { reason: 'granted', fence }),
          ),
        ),
        new Promise<Wake>((resolve) => {
          timer = setTimeout(() => resolve({ reason: 'poll' }), pollMs);
        }),
        once(signal, 'abort', { signal: gaveUp.signal }).then(
          (): Wake => ({ reason: 'aborted' }),
          (): Wake => ({ reason: 'aborted' }),
        ),
      ]);
    } finally {
      this.waiters.delete(token);
      clearTimeout(timer);
      gaveUp.abort();
    }
  }
}
