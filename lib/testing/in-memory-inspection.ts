import { holderTokenFacts } from '../locks/admin/holder-token.js';
import {
  LOCK_INSPECT_MAX_WAITERS,
  type LockHolderInfo,
  type LockHoldMode,
  type LockInspection,
  type LockWaiterInfo,
} from '../locks/admin/lock-inspection.js';
import type { InMemoryLockTable } from './in-memory-lock-table.js';

const modes = { w: 'write', r: 'read', s: 'semaphore' } as const satisfies Record<
  string,
  LockHoldMode
>;

/** `inspect()` of the in-memory store: the same view, built the same way, as on Redis. */
export function inMemoryInspection(name: string, table: InMemoryLockTable): LockInspection {
  const now = performance.now();
  const wallNow = Date.now();
  const { members, waitingCount } = table.members(name, LOCK_INSPECT_MAX_WAITERS);
  const holders: LockHolderInfo[] = [];
  const waiting: LockWaiterInfo[] = [];
  let total: number | undefined;
  let semaphore = false;
  for (const member of members) {
    const { askedAt, permits } = holderTokenFacts(member.token);
    const age = askedAt === undefined ? undefined : Math.max(0, wallNow - askedAt);
    if (member.kind === 'queue') {
      waiting.push({ mode: modes[member.mode], waitingMs: age });
      continue;
    }
    holders.push({
      mode: modes[member.kind],
      fencingToken: member.kind === 'w' ? member.fence : undefined,
      leaseRemainingMs: Math.max(0, Math.round(member.leaseEnd! - now)),
      heldMs: age,
    });
    if (member.kind === 's') {
      semaphore = true;
      if (permits !== undefined) total = Math.max(total ?? 0, permits);
    }
  }
  return {
    key: name,
    locked: holders.length > 0,
    holders,
    waiting,
    waitingCount,
    ...(semaphore ? { permits: { inUse: holders.length, total } } : {}),
  };
}
