import type { Cluster } from 'ioredis';
import type { RedisConnections } from '../connection/redis-connections.js';
import type { WaitCancel } from './wait-cancel.js';

/** Why a wait ended: the lock was handed over (with its fencing token), a release woke it to try, the poll timer, or the signal. */
export type Wake =
  { reason: 'granted'; fence: number } | { reason: 'release' | 'poll' | 'aborted' };

/** One channel's subscription, shared by every waiter on locks of its slot. */
export interface Subscription {
  holders: number;
  ready: Promise<void>;
  isReady: boolean;
}

/**
 * Wakes waiters when the lock they wait for is handed to them. A release
 * publishes the token of the next waiter in line (with the fencing token
 * when it handed the lock over); one subscriber connection serves every
 * waiter of the module, so a wake-up costs no command and wakes no one else.
 *
 * Each application has a channel of its own (its id is in its waiters'
 * tokens), so a hand-off wakes only the process that waits for it: with
 * replicas of a service waiting on one lock, the others do not read it. On
 * one node that is a single channel, subscribed on the first wait and kept.
 * On Redis Cluster there is one per hash slot, published with SPUBLISH so
 * that only the shard owning the slot carries the message, and subscribed
 * with SSUBSCRIBE only while someone waits on a lock of that slot.
 * An acquisition that finds the lock free subscribes to nothing.
 */
export class ReleaseListener {
  private readonly waiters = new Map<string, (fence: number | undefined) => void>();
  /**
   * Tokens in line here, each with the message that came while it was not
   * waiting (between two waits, an attempt on its way), so that it is not lost.
   */
  private readonly inLine = new Map<string, Wake | undefined>();
  private readonly subscriptions = new Map<string, Subscription>();
  private listening = false;

  constructor(
    private readonly connections: RedisConnections,
    private readonly sharded: boolean,
  ) {}

  /** The subscription to `channel` if it is in place now: a message published from here on arrives. */
  established(channel: string): Subscription | undefined {
    const subscription = this.subscriptions.get(channel);
    return subscription?.isReady ? subscription : undefined;
  }

  /**
   * Resolves once `channel` is subscribed, so that no hand-off published
   * after it can be missed, with that subscription and the function to call
   * when done waiting.
   */
  async hold(channel: string): Promise<{ subscription: Subscription; stop: () => void }> {
    this.listen();
    let subscription = this.subscriptions.get(channel);
    if (!subscription) {
      const created: Subscription = { holders: 0, isReady: false, ready: Promise.resolve() };
      created.ready = this.subscribe(channel).then(() => {
        created.isReady = true;
      });
      subscription = created;
      this.subscriptions.set(channel, subscription);
    }
    subscription.holders++;
    const held = subscription;
    let returned = false;
    const giveBack = () => {
      if (returned) return;
      returned = true;
      if (--held.holders > 0 || !this.sharded) return;
      this.subscriptions.delete(channel);
      this.unsubscribe(channel);
    };
    try {
      await held.ready;
    } catch (error) {
      // Not subscribed: the next waiter tries again rather than inherit the failure.
      returned = true;
      held.holders--;
      if (this.subscriptions.get(channel) === held) this.subscriptions.delete(channel);
      throw error;
    }
    return { subscription: held, stop: giveBack };
  }

  /** Keeps messages for `token` that come while it is not waiting, until the returned function is called. */
  keepFor(token: string): () => void {
    this.inLine.set(token, undefined);
    return () => void this.inLine.delete(token);
  }

  /** Waits until the token is called, `pollMs` passes (the fallback for a lost message), or the wait is cancelled. */
  async wait(token: string, pollMs: number, cancel: WaitCancel): Promise<Wake> {
    if (cancel.cancelled) return { reason: 'aborted' };
    const kept = this.inLine.get(token);
    if (kept) {
      this.inLine.set(token, undefined);
      return kept;
    }
    // One promise, settled by whichever comes first. No AbortController per
    // wait: aborting one builds an AbortError with a stack, on every hand-off.
    return new Promise<Wake>((resolve) => {
      const done = (wake: Wake) => {
        this.waiters.delete(token);
        clearTimeout(timer);
        stopListening();
        resolve(wake);
      };
      const timer = setTimeout(() => done({ reason: 'poll' }), pollMs);
      const stopListening = cancel.listen(() => done({ reason: 'aborted' }));
      this.waiters.set(token, (fence) =>
        done(fence === undefined ? { reason: 'release' } : { reason: 'granted', fence }),
      );
    });
  }

  /**
   * Wakes the waiter a hand-off message names, or keeps the message for it
   * until it waits: whether the message came on this application's channel,
   * or in the reply to a release this application made.
   */
  deliver(message: string): void {
    const [token, fence] = message.split(' ') as [string, string | undefined];
    const called = fence === undefined ? undefined : Number(fence);
    const waiter = this.waiters.get(token);
    if (waiter) waiter(called);
    else if (this.inLine.has(token)) {
      this.inLine.set(
        token,
        called === undefined ? { reason: 'release' } : { reason: 'granted', fence: called },
      );
    }
  }

  private listen(): void {
    if (this.listening) return;
    this.listening = true;
    // The message is the waiter's token, followed by its fencing token when the lock was handed over.
    const onMessage = (channel: string, message: string) => {
      if (this.subscriptions.has(channel)) this.deliver(message);
    };
    this.connections.subscriber.on(this.sharded ? 'smessage' : 'message', onMessage);
  }

  private async subscribe(channel: string): Promise<void> {
    const subscriber = this.connections.subscriber;
    if (this.sharded) await (subscriber as Cluster).ssubscribe(channel);
    else await subscriber.subscribe(channel);
  }

  private unsubscribe(channel: string): void {
    // A failed unsubscribe leaves a quiet channel subscribed: harmless.
    (this.connections.subscriber as Cluster).sunsubscribe(channel).catch(() => undefined);
  }
}
