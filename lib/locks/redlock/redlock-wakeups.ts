import type { WaitCancel } from '../wait-cancel.js';
import type { RedlockNodes } from './redlock.nodes.js';

/** Why a wait ended. */
export type RedlockWake = 'release' | 'poll' | 'aborted';

/** One waiter's ear on a lock name: `woken` turns true on any release message for it. */
export interface RedlockWatch {
  readonly woken: boolean;
  /** Forgets the messages heard so far, before another attempt. */
  reset(): void;
  /** Until a release message (unless `hearReleases` is false), `ms` passes, or the wait is cancelled. */
  wait(ms: number, cancel: WaitCancel, hearReleases?: boolean): Promise<RedlockWake>;
  stop(): void;
}

/**
 * Wakes Redlock waiters when a lock is released: the release script publishes
 * the lock's name on each master, and one subscription per master serves
 * every waiter of the module. The first message from any master is enough to
 * try again; a waiter also retries on its own timer, for lost messages and
 * masters that are down.
 */
export class RedlockWakeups {
  private readonly watchers = new Map<string, Set<() => void>>();
  private subscribed?: Promise<unknown>;

  constructor(
    private readonly nodes: RedlockNodes,
    readonly channel: string,
  ) {}

  /**
   * Subscribes on every master (once for the module) and resolves when all
   * are subscribed, or after `timeoutMs`: a master that is down subscribes
   * when it comes back, and the waiters' own timer covers it until then.
   */
  async start(timeoutMs: number): Promise<void> {
    this.subscribed ??= Promise.allSettled(
      this.nodes.all.map(async (node) => {
        const subscriber = this.nodes.subscriber(node);
        subscriber.on('message', (channel: string, name: string) => {
          if (channel !== this.channel) return;
          for (const wake of this.watchers.get(name) ?? []) wake();
        });
        await subscriber.subscribe(this.channel);
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.subscribed,
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  watch(name: string): RedlockWatch {
    let woken = false;
    let onWake: (() => void) | undefined;
    const wake = () => {
      woken = true;
      onWake?.();
    };
    const watchers = this.watchers.get(name) ?? new Set();
    watchers.add(wake);
    this.watchers.set(name, watchers);
    return {
      get woken() {
        return woken;
      },
      reset: () => {
        woken = false;
      },
      wait: async (ms, cancel, hearReleases = true) => {
        if (cancel.cancelled) return 'aborted';
        if (hearReleases && woken) return 'release';
        let timer: NodeJS.Timeout | undefined;
        let stopListening: (() => void) | undefined;
        try {
          return await new Promise<RedlockWake>((resolve) => {
            if (hearReleases) onWake = () => resolve('release');
            timer = setTimeout(() => resolve('poll'), ms);
            stopListening = cancel.listen(() => resolve('aborted'));
          });
        } finally {
          onWake = undefined;
          clearTimeout(timer);
          stopListening?.();
        }
      },
      stop: () => {
        watchers.delete(wake);
        if (watchers.size === 0 && this.watchers.get(name) === watchers) this.watchers.delete(name);
      },
    };
  }
}
