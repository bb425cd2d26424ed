import type { ScriptMode } from '../locks/held-lock.js';
import type { WaitCancel } from '../locks/wait-cancel.js';

/** What a caller asks for: its mode, its lease, and (for a semaphore) how many holders the lock admits. */
export interface LockWant {
  mode: ScriptMode;
  ttlMs: number;
  permits: number;
}

/** One holder or waiter as `inspect()` lists it: the token stays inside the store's callers. */
export interface TableMember {
  kind: ScriptMode | 'queue';
  mode: ScriptMode;
  token: string;
  fence?: number;
  /** performance.now() when its lease ends (holders only). */
  leaseEnd?: number;
}

/** Why a wait ended: the lock was handed over, a release woke the waiter to try, the poll timer, or the signal. */
export type TableWake = 'granted' | 'release' | 'poll' | 'aborted';

interface Waiter extends LockWant {
  token: string;
}

/** One lock name: the same five things the Redis scripts keep under its keys. */
interface Entry {
  writer?: { token: string; fence: number; expiresAt: number };
  /** Shared holders: token → lease end. */
  readers: Map<string, number>;
  /** Semaphore holders: token → lease end. */
  permits: Map<string, number>;
  /** Waiters in arrival order. */
  queue: Waiter[];
  /** Waiters' own leases, so one that stopped asking leaves the line: token → lease end. */
  waiterLeases: Map<string, number>;
}

/**
 * Every lock of one in-memory store, with the rules of `lock.scripts.ts`
 * applied step by step: a fair line in arrival order, a free lock handed to
 * the head of the line (set in its name when it waits to write, so no
 * newcomer takes it first), read/write and semaphore holders with their own
 * leases, and a fencing counter per name that only goes up. Every operation
 * is synchronous, as a script is atomic; leases count on `performance.now()`.
 */
export class InMemoryLockTable {
  private readonly entries = new Map<string, Entry>();
  private readonly fences = new Map<string, number>();
  /** Waiters waiting now: token → how to wake them. */
  private readonly wakers = new Map<string, (wake: TableWake) => void>();
  /** Tokens in line, each with a wake-up that came while it was not waiting. */
  private readonly kept = new Map<string, TableWake | undefined>();
  /** Holders evicted by forceRelease(), by name: token → until when that is remembered. */
  private readonly evictions = new Map<string, Map<string, number>>();

  /** The `acquire` script: the fencing token when taken, 0 when busy (joining the line when `enqueue`). */
  acquire(
    name: string,
    token: string,
    want: LockWant,
    enqueue: boolean,
    waiterLeaseMs: number,
  ): number {
    const now = performance.now();
    const entry = this.entry(name);
    if (want.mode === 'w') {
      const writer = this.liveWriter(entry, now);
      // Handed over already: ours, with a lease renewed from now.
      if (writer?.token === token) {
        writer.expiresAt = now + want.ttlMs;
        return writer.fence;
      }
      if (writer && !enqueue) return this.settle(name, entry, 0);
    }
    forgetGoneWaiters(entry, now);
    expireHolders(entry.readers, now);
    expireHolders(entry.permits, now);
    const writer = this.liveWriter(entry, now);
    const free =
      want.mode === 'w'
        ? !writer && entry.readers.size === 0
        : want.mode === 'r'
          ? !writer
          : entry.permits.size < want.permits;
    const head = entry.queue[0];
    if (free && (!head || head.token === token)) {
      if (head) leaveLine(entry, token);
      if (want.mode === 'w') {
        const fence = this.nextFence(name);
        entry.writer = { token, fence, expiresAt: now + want.ttlMs };
        return fence;
      }
      (want.mode === 'r' ? entry.readers : entry.permits).set(token, now + want.ttlMs);
      // A reader or a permit leaves room: the next in line may go too.
      const next = entry.queue[0];
      if (next) this.wake(next.token, 'release');
      return this.nextFence(name);
    }
    if (enqueue) {
      if (!entry.queue.some((w) => w.token === token)) entry.queue.push({ token, ...want });
      entry.waiterLeases.set(token, now + waiterLeaseMs);
    }
    return this.settle(name, entry, 0);
  }

  /** The `release` script: true when this token held the lock; then hands it to the next in line, or wakes it. */
  release(name: string, token: string, mode: ScriptMode): boolean {
    const entry = this.entries.get(name);
    if (!entry) return false;
    const now = performance.now();
    let released = false;
    if (mode === 'w') {
      if (this.liveWriter(entry, now)?.token === token) {
        entry.writer = undefined;
        released = true;
      }
    } else {
      released = (mode === 'r' ? entry.readers : entry.permits).delete(token);
    }
    if (released && entry.queue.length > 0) this.handOff(name, entry, now);
    this.settle(name, entry, 0);
    return released;
  }

  /** The `extend` script: true when the lease was renewed to `ttlMs` from now, false when no longer held. */
  extend(name: string, token: string, mode: ScriptMode, ttlMs: number): boolean {
    const entry = this.entries.get(name);
    if (!entry) return false;
    const now = performance.now();
    if (mode === 'w') {
      const writer = this.liveWriter(entry, now);
      if (writer?.token !== token) return false;
      writer.expiresAt = now + ttlMs;
      return true;
    }
    const holders = mode === 'r' ? entry.readers : entry.permits;
    const lease = holders.get(token);
    if (lease === undefined || lease <= now) {
      holders.delete(token);
      this.settle(name, entry, 0);
      return false;
    }
    holders.set(token, now + ttlMs);
    return true;
  }

  /** The `leave` script: a waiter that gives up leaves the line; a lock handed to it meanwhile goes on to the next. */
  leave(name: string, token: string): void {
    const entry = this.entries.get(name);
    if (!entry) return;
    const now = performance.now();
    const wasHead = entry.queue[0]?.token === token;
    leaveLine(entry, token);
    const granted = this.liveWriter(entry, now)?.token === token;
    if (granted) entry.writer = undefined;
    if (wasHead || granted) this.handOff(name, entry, now);
    this.settle(name, entry, 0);
  }

  /** The `isLocked` script: whether anyone holds the lock now, in any mode. */
  isLocked(name: string): boolean {
    const entry = this.entries.get(name);
    if (!entry) return false;
    const now = performance.now();
    if (this.liveWriter(entry, now)) return true;
    const live = (holders: Map<string, number>) => [...holders.values()].some((end) => end > now);
    return live(entry.readers) || live(entry.permits);
  }

  /** What `inspect()` shows of a name: live holders, then live waiters in order (at most `maxWaiters`), and how many wait. */
  members(name: string, maxWaiters: number): { members: TableMember[]; waitingCount: number } {
    const entry = this.entries.get(name);
    if (!entry) return { members: [], waitingCount: 0 };
    const now = performance.now();
    forgetGoneWaiters(entry, now);
    const members: TableMember[] = [];
    const writer = this.liveWriter(entry, now);
    if (writer) {
      members.push({
        kind: 'w',
        mode: 'w',
        token: writer.token,
        fence: writer.fence,
        leaseEnd: writer.expiresAt,
      });
    }
    for (const [kind, holders] of [
      ['r', entry.readers],
      ['s', entry.permits],
    ] as const) {
      for (const [token, leaseEnd] of holders) {
        if (leaseEnd > now) members.push({ kind, mode: kind, token, leaseEnd });
      }
    }
    for (const waiter of entry.queue.slice(0, maxWaiters)) {
      members.push({ kind: 'queue', mode: waiter.mode, token: waiter.token });
    }
    return { members, waitingCount: entry.queue.length };
  }

  /** The `forceRelease` script: evicts every holder, raises the fencing counter, and hands over or wakes the line. */
  forceRelease(name: string): { evicted: number; fence: number } {
    const now = performance.now();
    const entry = this.entries.get(name);
    let evicted = 0;
    if (entry) {
      const gone = this.evictions.get(name) ?? new Map<string, number>();
      const evict = (token: string, leaseEnd: number) => {
        gone.set(token, now + 2 * (leaseEnd - now) + 1_000);
        evicted++;
      };
      const writer = this.liveWriter(entry, now);
      if (writer) evict(writer.token, writer.expiresAt);
      for (const holders of [entry.readers, entry.permits]) {
        for (const [token, end] of holders) if (end > now) evict(token, end);
        holders.clear();
      }
      entry.writer = undefined;
      if (gone.size > 0) this.evictions.set(name, gone);
    }
    const fence = this.nextFence(name);
    if (entry && entry.queue.length > 0) this.handOff(name, entry, now);
    if (entry) this.settle(name, entry, 0);
    return { evicted, fence };
  }

  /** Whether forceRelease() evicted `token` from `name` (remembered while it could still renew). */
  wasEvicted(name: string, token: string): boolean {
    const gone = this.evictions.get(name);
    if (!gone) return false;
    const now = performance.now();
    for (const [evicted, until] of gone) if (until <= now) gone.delete(evicted);
    if (gone.size === 0) this.evictions.delete(name);
    return gone.has(token);
  }

  /** Keeps wake-ups for `token` that come while it is not waiting, until the returned function is called. */
  keepFor(token: string): () => void {
    this.kept.set(token, undefined);
    return () => void this.kept.delete(token);
  }

  /** Waits until `token` is woken, `pollMs` passes (as a waiter on Redis would poll), or the wait is cancelled. */
  wait(token: string, pollMs: number, cancel: WaitCancel): Promise<TableWake> {
    if (cancel.cancelled) return Promise.resolve('aborted');
    const early = this.kept.get(token);
    if (early) {
      this.kept.set(token, undefined);
      return Promise.resolve(early);
    }
    return new Promise<TableWake>((resolve) => {
      const done = (wake: TableWake) => {
        clearTimeout(timer);
        stopListening();
        this.wakers.delete(token);
        resolve(wake);
      };
      const timer = setTimeout(() => done('poll'), pollMs);
      const stopListening = cancel.listen(() => done('aborted'));
      this.wakers.set(token, done);
    });
  }

  /** Hands a free lock to a head waiting to write; any other head is woken to try. */
  private handOff(name: string, entry: Entry, now: number): void {
    forgetGoneWaiters(entry, now);
    const head = entry.queue[0];
    if (!head) return;
    expireHolders(entry.readers, now);
    if (head.mode === 'w' && !this.liveWriter(entry, now) && entry.readers.size === 0) {
      const fence = this.nextFence(name);
      entry.writer = { token: head.token, fence, expiresAt: now + head.ttlMs };
      leaveLine(entry, head.token);
      this.wake(head.token, 'granted');
    } else {
      this.wake(head.token, 'release');
    }
  }

  private wake(token: string, wake: TableWake): void {
    const waker = this.wakers.get(token);
    if (waker) waker(wake);
    else if (this.kept.has(token)) this.kept.set(token, wake);
  }

  private liveWriter(entry: Entry, now: number): Entry['writer'] {
    if (entry.writer && entry.writer.expiresAt <= now) entry.writer = undefined;
    return entry.writer;
  }

  private nextFence(name: string): number {
    const fence = (this.fences.get(name) ?? 0) + 1;
    this.fences.set(name, fence);
    return fence;
  }

  private entry(name: string): Entry {
    let entry = this.entries.get(name);
    if (!entry) {
      entry = { readers: new Map(), permits: new Map(), queue: [], waiterLeases: new Map() };
      this.entries.set(name, entry);
    }
    return entry;
  }

  /** Drops an entry with nothing left in it (as Redis drops empty keys); the fencing counter stays. */
  private settle<T>(name: string, entry: Entry, result: T): T {
    const empty =
      !entry.writer &&
      entry.readers.size === 0 &&
      entry.permits.size === 0 &&
      entry.queue.length === 0;
    if (empty) this.entries.delete(name);
    return result;
  }
}

function expireHolders(holders: Map<string, number>, now: number): void {
  for (const [token, end] of holders) if (end <= now) holders.delete(token);
}

function forgetGoneWaiters(entry: Entry, now: number): void {
  for (const [token, end] of entry.waiterLeases) if (end <= now) leaveLine(entry, token);
}

function leaveLine(entry: Entry, token: string): void {
  const at = entry.queue.findIndex((w) => w.token === token);
  if (at >= 0) entry.queue.splice(at, 1);
  entry.waiterLeases.delete(token);
}
