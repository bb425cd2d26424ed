import type { LockLossReason } from '../errors/lock-lost.error.js';
import type { ForceReleaseResult, LockInspection } from './admin/lock-inspection.js';
import type { HeldLock, HeldPart, ScriptMode } from './held-lock.js';
import type { WaitCancel } from './wait-cancel.js';

export type WokenBy = 'first-try' | 'release' | 'poll';

/**
 * DI token of the store LockService takes its locks from. RedisTxModule
 * provides the module's Redis or the Redlock quorum; `nestjs-redis-tx/testing`
 * can put an in-memory store in its place.
 */
export const LOCK_STORE = 'nestjs-redis-tx:lock-store';

/** The terms of one acquisition, once the defaults are filled in. */
export interface LockTerms {
  mode: ScriptMode;
  ttlMs: number;
  waitMs: number;
  /** Holders a semaphore admits; 0 for other modes. */
  permits: number;
  replicaAcks: number;
  replicaAckTimeoutMs: number;
}

/** One name of a lock to take, with what the store needs to wait for it. */
export interface PartRequest extends LockTerms {
  /** performance.now() after which no new attempt starts. */
  deadline: number;
  /** Every name of the lock being taken, for messages and events. */
  allNames: readonly string[];
  /** What ends the wait early: the caller's signal, or the app shutting down. */
  cancelForWait: () => WaitCancel;
  closing: () => boolean;
}

export interface AcquiredPart {
  part: HeldPart;
  /**
   * When the request that won the lock was sent (for a hand-off: the request
   * that confirmed and renewed it): Redis set the lease no earlier, so it
   * counts from there.
   */
  sentAt: number;
  wokenBy: WokenBy;
}

/**
 * Where locks live and how a name is taken, renewed and given back: one Redis
 * (a node, through Sentinel, or a Cluster) or a quorum of independent masters
 * (Redlock). LockService does everything else (re-entry, several names,
 * leases, shutdown) the same way for both.
 */
export interface LockStore {
  /** Throws InvalidOptionsError, naming the option, for terms this store cannot honour. */
  refuseUnsupported(terms: Pick<LockTerms, 'mode' | 'replicaAcks'>, where: string): void;
  acquirePart(name: string, request: PartRequest): Promise<AcquiredPart>;
  extend(part: HeldPart, mode: ScriptMode, ttlMs: number): Promise<boolean>;
  release(part: HeldPart, mode: ScriptMode): Promise<boolean>;
  isLocked(name: string): Promise<boolean>;
  /**
   * When, on performance.now(), a lease of `ttlMs` set by a request sent at
   * `sentAt` may have ended in this store: the send time plus the lease,
   * less the drift margin (see lease-validity.ts).
   */
  leaseEndsAt(sentAt: number, ttlMs: number): number;
  /** Called once for each lock this store granted, as soon as it is held. */
  held(lock: HeldLock): void;
  /** Holders, waiters and leases of one name (LockService.inspect); a store that cannot throws InvalidOptionsError. */
  inspect(name: string): Promise<LockInspection>;
  /** Evicts every holder, raises the fencing counter, and wakes the line (LockService.forceRelease). */
  forceRelease(name: string): Promise<ForceReleaseResult>;
  /** Why a part whose renewal found it gone was lost; 'lease-expired' unless the store knows better. */
  lossReason(part: HeldPart): Promise<LockLossReason>;
}
