import { Inject, Injectable } from '@nestjs/common';
import { channels } from '../../diagnostics/redis-tx.channels.js';
import { LockLostError } from '../../errors/lock-lost.error.js';
import { LockNotAcquiredError } from '../../errors/lock-not-acquired.error.js';
import { RedisTxError } from '../../errors/redis-tx.error.js';
import { REDIS_TX_OPTIONS } from '../../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../../module/redis-tx.options.js';
import { messages } from '../../redis-tx.messages.js';
import { InvalidOptionsError } from '../../errors/invalid-options.error.js';
import type { LockLossReason } from '../../errors/lock-lost.error.js';
import type { ForceReleaseResult, LockInspection } from '../admin/lock-inspection.js';
import type { HeldLock, HeldPart, ScriptMode } from '../held-lock.js';
import type { AcquiredPart, LockStore, LockTerms, PartRequest, WokenBy } from '../lock-store.js';
import { leaseEndsAt } from '../lease-validity.js';
import { lockRedisKeys } from '../lock-keys.js';
import { newToken } from '../lock-token.js';
import { RedlockNodeError } from './redlock-node.error.js';
import type { RedlockNode } from './redlock-node.js';
import { RedlockWakeups, type RedlockWatch } from './redlock-wakeups.js';
import { Round } from './redlock-round.js';
import { RedlockNodes } from './redlock.nodes.js';
import { keyTtlMs, quorumOf, validityMs } from './redlock.quorum.js';

/** How one attempt ended when it did not take the lock. */
interface Refusal {
  /** Masters that gave an answer at all (granted or busy). */
  answered: number;
  /** Some masters granted it, but not a quorum: others are trying at the same moment. */
  splitVote: boolean;
  errors: RedlockNodeError[];
  /**
   * A majority granted it, yet it was not handed out: its lease ran out on
   * the way (`lease-expired`), or too few masters agreed on its fencing
   * token (`no-quorum`).
   */
  wonButLost?: 'lease-expired' | 'no-quorum';
}

/**
 * Locks taken by quorum over the independent masters of `locks.redlock`
 * (Redlock). A lock is held when a majority of masters set its key within
 * the lease, less the time that took and an allowance for clock drift;
 * otherwise whatever was set is released at once. Locks are exclusive;
 * waiters are woken by the release's message from any master, with no queue.
 */
@Injectable()
export class RedlockLocks implements LockStore {
  private readonly wakeups: RedlockWakeups;
  /** The last vote on behalf of each held part, to name the masters that failed when the lock is lost. */
  private readonly latest = new WeakMap<HeldPart, Round<number>>();
  private readonly prefix: string;
  private readonly fenceKey: string;
  private readonly drift: number;
  private readonly pollMs: number;
  private readonly answerTimeoutMs: number;

  constructor(
    private readonly nodes: RedlockNodes,
    @Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions,
  ) {
    this.prefix = options.locks.keyPrefix;
    this.fenceKey = `${options.locks.keyPrefix}fence`;
    this.drift = options.locks.redlock?.clockDriftFactor ?? 0;
    this.pollMs = options.locks.pollMs;
    this.answerTimeoutMs = options.transactions.readyTimeoutMs;
    this.wakeups = new RedlockWakeups(nodes, `${options.locks.keyPrefix}redlock`);
  }

  get enabled(): boolean {
    return this.nodes.enabled;
  }

  private get quorum(): number {
    return quorumOf(this.nodes.all.length);
  }

  /** Read locks and semaphores have no quorum form here; masters of a Redlock have no replicas to WAIT for. */
  refuseUnsupported(terms: Pick<LockTerms, 'mode' | 'replicaAcks'>, where: string): void {
    if (terms.mode !== 'w') {
      const option = terms.mode === 's' ? 'permits' : 'mode';
      throw new InvalidOptionsError(option, messages.redlockExclusiveOnly(option, where));
    }
    if (terms.replicaAcks > 0) {
      throw new InvalidOptionsError('replicaAcks', messages.replicaAcksUnsupported(where));
    }
  }

  async acquirePart(name: string, request: PartRequest): Promise<AcquiredPart> {
    const key = lockRedisKeys(this.prefix, name).writer;
    let wokenBy: WokenBy = 'first-try';
    let watch: RedlockWatch | undefined;
    let announced = false;
    try {
      for (;;) {
        watch?.reset();
        const replyMs = Math.min(
          request.ttlMs,
          Math.max(request.deadline - performance.now(), this.pollMs),
        );
        const attemptStarted = performance.now();
        const outcome = await this.attempt(name, key, request.ttlMs, replyMs);
        if ('part' in outcome) return { ...outcome, wokenBy };
        const remaining = request.deadline - performance.now();
        if (remaining <= 0) throw this.notAcquired(name, request, outcome);
        if (!watch) {
          // Listen before the next attempt, so that a release after it cannot go unheard.
          watch = this.wakeups.watch(name);
          await this.wakeups.start(Math.min(remaining, this.pollMs));
          continue;
        }
        if (!announced) {
          announced = true;
          channels.lockWait.publish(() => ({ keys: request.allNames, mode: 'write' }));
        }
        const cancel = request.cancelForWait();
        const wake = outcome.splitVote
          ? // Callers that split the vote retry at random moments, so one of them wins next.
            await watch.wait(splitVoteDelay(performance.now() - attemptStarted), cancel, false)
          : await watch.wait(Math.min(remaining, this.pollMs * (0.5 + Math.random() / 2)), cancel);
        if (wake === 'aborted') {
          throw new LockNotAcquiredError(
            request.closing()
              ? messages.lockShuttingDown
              : messages.lockWaitAborted(request.allNames),
            request.allNames,
            { reason: request.closing() ? 'shutdown' : 'aborted', cause: cancel.reason },
          );
        }
        wokenBy = wake;
      }
    } finally {
      watch?.stop();
    }
  }

  /** Renews on every master; true when a majority renewed it within the new lease. */
  async extend(part: HeldPart, _mode: ScriptMode, ttlMs: number): Promise<boolean> {
    const keyTtl = keyTtlMs(ttlMs, this.drift);
    const round = new Round(this.nodes.all, (node) =>
      node.send(
        (redis) => redis.nestjsRedisTxRedlockExtend(part.keys.writer, part.token, keyTtl),
        ttlMs,
      ),
    );
    this.latest.set(part, round);
    const renewed = () => round.count((value) => value === 1);
    const q = this.quorum;
    await round.until(() => renewed() >= q || renewed() + round.pending < q);
    if (renewed() >= q) {
      return validityMs(keyTtl, performance.now() - round.startedAt, this.drift) > 0;
    }
    // Unreachable masters may still hold it: fail this renewal and let the
    // next one (or the end of the lease) decide. A majority that answered
    // "not held" is final.
    if (renewed() + round.errors.length >= q) {
      throw new RedisTxError(
        messages.redlockNoMajority(part.name, 'the renewal', renewed(), q, round.nodes.length),
        { cause: this.causes(part.name, round) },
      );
    }
    return false;
  }

  /** Deletes it by token on every master; true when a majority did. */
  async release(part: HeldPart): Promise<boolean> {
    this.latest.delete(part);
    const round = this.releaseEverywhere(part.name, part.keys.writer, part.token);
    const released = () => round.count((value) => value === 1);
    const q = this.quorum;
    await round.until(() => released() >= q || released() + round.pending < q);
    return released() >= q;
  }

  /** Refused: each master has its own copy of the lock, and no one master's view is the lock's. */
  inspect(): Promise<LockInspection> {
    return Promise.reject(
      new InvalidOptionsError('locks.redlock', messages.lockAdminOnRedlock('inspect')),
    );
  }

  /** Refused, like inspect(): evicting on some masters only could leave two holders. */
  forceRelease(): Promise<ForceReleaseResult> {
    return Promise.reject(
      new InvalidOptionsError('locks.redlock', messages.lockAdminOnRedlock('forceRelease')),
    );
  }

  /** No forced release here, so a lock is only ever lost with its lease. */
  async lossReason(): Promise<LockLossReason> {
    return 'lease-expired';
  }

  /** Whether a majority of masters hold the lock now. */
  async isLocked(name: string): Promise<boolean> {
    const key = lockRedisKeys(this.prefix, name).writer;
    const round = new Round(this.nodes.all, (node) =>
      node.send((redis) => redis.exists(key), this.answerTimeoutMs),
    );
    const q = this.quorum;
    const n = round.nodes.length;
    const held = () => round.count((value) => value === 1);
    const free = () => round.count((value) => value === 0);
    await round.until(() => held() >= q || free() > n - q);
    if (held() >= q) return true;
    if (held() + free() < q) {
      throw new RedisTxError(
        messages.redlockNoMajority(name, 'whether it is held', held() + free(), q, n),
        { cause: this.causes(name, round) },
      );
    }
    return false;
  }

  /**
   * The keys were set for longer than the lease (see keyTtlMs) so that,
   * less the drift margin, the whole lease is valid from the first send.
   */
  leaseEndsAt(sentAt: number, ttlMs: number): number {
    return leaseEndsAt(sentAt, keyTtlMs(ttlMs, this.drift), this.drift);
  }

  /** When the lock is lost, its LockLostError's cause names the masters that failed it. */
  held(lock: HeldLock): void {
    lock.signal.addEventListener(
      'abort',
      () => {
        const reason: unknown = lock.signal.reason;
        // Only a loss has masters to blame (the signal also aborts at shutdown).
        if (!(reason instanceof LockLostError) || reason.cause !== undefined) return;
        const causes = lock.parts.flatMap((part) => {
          const round = this.latest.get(part);
          return round ? this.causes(part.name, round).errors : [];
        });
        reason.cause = new AggregateError(causes, messages.redlockNodeCauses(lock.keys.join(', ')));
      },
      { once: true },
    );
  }

  private async attempt(
    name: string,
    key: string,
    ttlMs: number,
    replyMs: number,
  ): Promise<Omit<AcquiredPart, 'wokenBy'> | Refusal> {
    const token = newToken();
    const keyTtl = keyTtlMs(ttlMs, this.drift);
    const round = new Round(this.nodes.all, (node) =>
      node.send(
        (redis) => redis.nestjsRedisTxRedlockAcquire(key, this.fenceKey, token, keyTtl),
        replyMs,
      ),
    );
    const q = this.quorum;
    const granted = () => round.count((fence) => fence > 0);
    await round.until(
      () => granted() >= q || round.nodes.length - (round.votes.size - granted()) < q,
    );
    const stillValid = () =>
      validityMs(keyTtl, performance.now() - round.startedAt, this.drift) > 0;
    let wonButLost: Refusal['wonButLost'];
    if (granted() >= q) {
      const fence = stillValid() ? await this.agreeOnFence(round, replyMs) : -1;
      if (fence > 0 && stillValid()) {
        const part: HeldPart = { name, keys: lockRedisKeys(this.prefix, name), token, fence };
        this.latest.set(part, round);
        return { part, sentAt: round.startedAt };
      }
      wonButLost = fence === 0 ? 'no-quorum' : 'lease-expired';
    }
    // Let the masters still on their way answer (each within `replyMs`), so
    // that what they set is released now, not left to its lease.
    await round.until(() => false);
    const answered = round.count(() => true);
    const splitVote = granted() > 0;
    await this.releaseAfterAttempt(round, name, key, token);
    return { answered, splitVote, errors: round.errors, wonButLost };
  }

  /**
   * The fencing token is the highest count among the masters that granted
   * the lock; a majority must have their counter at least there, so that the
   * next quorum (which shares a master with it) hands out a higher one.
   * Usually the masters agree already and this costs nothing.
   */
  private async agreeOnFence(round: Round<number>, replyMs: number): Promise<number> {
    const fences = [...round.votes.values()].flatMap((vote) =>
      vote.ok && vote.value > 0 ? [vote.value] : [],
    );
    const highest = Math.max(...fences);
    const q = this.quorum;
    if (fences.filter((fence) => fence === highest).length >= q) return highest;
    const raise = new Round(round.nodes, (node) =>
      node.send((redis) => redis.nestjsRedisTxRedlockRaiseFence(this.fenceKey, highest), replyMs),
    );
    const raised = () => raise.count(() => true);
    await raise.until(() => raised() >= q || raised() + raise.pending < q);
    return raised() >= q ? highest : 0;
  }

  /**
   * Releases at once what the attempt took, waiting for the masters that
   * granted it; masters whose answer is unknown (lost, late, down) get the
   * release too, queued behind the acquire on the same connection.
   */
  private async releaseAfterAttempt(
    round: Round<number>,
    name: string,
    key: string,
    token: string,
  ): Promise<void> {
    const granted = round.nodes.filter((node) => {
      const vote = round.votes.get(node);
      return vote?.ok && vote.value > 0;
    });
    const unknown = round.nodes.filter((node) => !round.votes.get(node)?.ok);
    for (const node of unknown) void this.releaseOn(node, name, key, token).catch(() => 0);
    await Promise.all(granted.map((node) => this.releaseOn(node, name, key, token).catch(() => 0)));
  }

  private releaseEverywhere(name: string, key: string, token: string): Round<number> {
    return new Round(this.nodes.all, (node) => this.releaseOn(node, name, key, token));
  }

  private releaseOn(node: RedlockNode, name: string, key: string, token: string): Promise<number> {
    return node.send(
      (redis) => redis.nestjsRedisTxRedlockRelease(key, token, this.wakeups.channel, name),
      this.answerTimeoutMs,
    );
  }

  /** One error per master that did not do its part in `round`: failed, gave no reply, or no longer holds the lock. */
  private causes(name: string, round: Round<number>): AggregateError {
    const waited = performance.now() - round.startedAt;
    const errors = round.nodes.flatMap((node): RedlockNodeError[] => {
      const vote = round.votes.get(node);
      if (!vote)
        return [new RedlockNodeError(node.label, messages.redlockNodeNoReply(node.label, waited))];
      if (!vote.ok) return [vote.error];
      return vote.value === 0
        ? [new RedlockNodeError(node.label, messages.redlockNodeNotHeld(node.label))]
        : [];
    });
    return new AggregateError(errors, messages.redlockNodeCauses(name));
  }

  private notAcquired(name: string, request: PartRequest, refusal: Refusal): Error {
    const q = this.quorum;
    if (refusal.wonButLost === 'lease-expired') {
      return new LockNotAcquiredError(
        messages.redlockLeaseExpired(name, request.ttlMs),
        request.allNames,
        { reason: 'lease-expired' },
      );
    }
    if (refusal.answered < q || refusal.wonButLost === 'no-quorum') {
      return new LockNotAcquiredError(
        messages.redlockNoQuorum(name, refusal.answered, q, this.nodes.all.length, request.waitMs),
        request.allNames,
        {
          reason: 'no-quorum',
          cause: new AggregateError(refusal.errors, messages.redlockNodeCauses(name)),
        },
      );
    }
    return new LockNotAcquiredError(
      messages.lockBusy(request.allNames, request.waitMs),
      request.allNames,
      { reason: request.waitMs > 0 ? 'timeout' : 'busy' },
    );
  }
}

/** A random pause of up to a few attempts' length, at least 5 ms, so that callers who split a vote drift apart. */
function splitVoteDelay(attemptMs: number): number {
  return Math.random() * Math.max(5, 3 * attemptMs);
}
