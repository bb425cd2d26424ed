import type {
  LockHolderInfo,
  LockHoldMode,
  LockInspection,
  LockWaiterInfo,
} from './lock-inspection.js';

const modes: Record<string, LockHoldMode> = { w: 'write', r: 'read', s: 'semaphore' };

/** Turns the inspect script's flat reply into a LockInspection, with ages on this process's wall clock. */
export function readInspection(key: string, reply: readonly (string | number)[]): LockInspection {
  const wallNow = Date.now();
  const holders: LockHolderInfo[] = [];
  const waiting: LockWaiterInfo[] = [];
  let total: number | undefined;
  let semaphore = false;
  const age = (askedAt: string | number) =>
    askedAt === '' ? undefined : Math.max(0, wallNow - Number(askedAt));
  for (let i = 1; i + 5 <= reply.length; i += 5) {
    const [kind, fence, left, askedAt, permits] = reply.slice(i, i + 5).map(String) as [
      string,
      string,
      string,
      string,
      string,
    ];
    if (kind.startsWith('q')) {
      waiting.push({ mode: modes[kind.slice(1)] ?? 'write', waitingMs: age(askedAt) });
      continue;
    }
    const mode = modes[kind]!;
    holders.push({
      mode,
      fencingToken: fence === '' ? undefined : Number(fence),
      leaseRemainingMs: Math.max(0, Number(left)),
      heldMs: age(askedAt),
    });
    if (mode === 'semaphore') {
      semaphore = true;
      if (permits !== '') total = Math.max(total ?? 0, Number(permits));
    }
  }
  return {
    key,
    locked: holders.length > 0,
    holders,
    waiting,
    waitingCount: Number(reply[0] ?? 0),
    ...(semaphore ? { permits: { inUse: holders.length, total } } : {}),
  };
}
