import { once } from 'node:events';
import type { Redis } from 'ioredis';

/**
 * Redis's own announcements of what happens to keys (keyspace
 * notifications), for the events a test must wait on that no client sees:
 * a key expiring, another client adding to a sorted set. Turn them on for
 * the server first (`notify-keyspace-events`), then `start()` before the
 * action, so nothing is missed; `stop()` in a finally.
 */
export class KeyEvents {
  private readonly subscriber: Redis;
  private readonly seen: { event: string; key: string }[] = [];
  private readonly waiting = new Set<() => void>();

  constructor(observer: Redis) {
    this.subscriber = observer.duplicate();
    this.subscriber.on('pmessage', (_pattern: string, channel: string, key: string) => {
      this.seen.push({ event: channel.slice(channel.indexOf(':') + 1), key });
      for (const check of [...this.waiting]) check();
    });
  }

  /** Turns the notifications this class listens to on, for the whole server. */
  static async enable(observer: Redis): Promise<void> {
    await observer.config('SET', 'notify-keyspace-events', 'Ezx');
  }

  async start(): Promise<this> {
    await this.subscriber.psubscribe('__keyevent@*__:*');
    return this;
  }

  /** Resolves when `event` (e.g. 'expired', 'zadd') has happened to `key` since start(). */
  next(event: string, key: string): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!this.seen.some((seen) => seen.event === event && seen.key === key)) return;
        this.waiting.delete(check);
        resolve();
      };
      this.waiting.add(check);
      check();
    });
  }

  /** Forgets what was seen so far, so that `next` waits for a new event. */
  forget(): void {
    this.seen.length = 0;
  }

  async stop(): Promise<void> {
    this.subscriber.disconnect();
    if (this.subscriber.status !== 'end') await once(this.subscriber, 'end');
  }
}
