import { messages } from '../../redis-tx.messages.js';
import { RedlockNodeError } from './redlock-node.error.js';
import type { RedlockNode } from './redlock-node.js';

export type Vote<T> = { ok: true; value: T } | { ok: false; error: RedlockNodeError };

/**
 * One command sent to every master at once, with the answers as they come
 * in. A caller waits only until the answers so far decide its question (a
 * quorum reached, or out of reach); the rest keep arriving and are recorded.
 */
export class Round<T> {
  readonly votes = new Map<RedlockNode, Vote<T>>();
  readonly startedAt = performance.now();
  private readonly listeners = new Set<() => void>();

  constructor(
    readonly nodes: readonly RedlockNode[],
    send: (node: RedlockNode) => Promise<T>,
  ) {
    for (const node of nodes) {
      send(node).then(
        (value) => this.record(node, { ok: true, value }),
        (error: unknown) => this.record(node, { ok: false, error: asNodeError(node, error) }),
      );
    }
  }

  /** How many masters answered with a value for which `accept` is true. */
  count(accept: (value: T) => boolean): number {
    let n = 0;
    for (const vote of this.votes.values()) if (vote.ok && accept(vote.value)) n++;
    return n;
  }

  get pending(): number {
    return this.nodes.length - this.votes.size;
  }

  get errors(): RedlockNodeError[] {
    return [...this.votes.values()].flatMap((vote) => (vote.ok ? [] : [vote.error]));
  }

  /** Resolves once `decided()` holds or every master has answered. */
  until(decided: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.pending > 0 && !decided()) return;
        this.listeners.delete(check);
        resolve();
      };
      this.listeners.add(check);
      check();
    });
  }

  private record(node: RedlockNode, vote: Vote<T>): void {
    this.votes.set(node, vote);
    for (const listener of [...this.listeners]) listener();
  }
}

function asNodeError(node: RedlockNode, error: unknown): RedlockNodeError {
  return error instanceof RedlockNodeError
    ? error
    : new RedlockNodeError(node.label, messages.redlockNodeFailed(node.label, String(error)), {
        cause: error,
      });
}
