import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import type { RedisClient } from './redis-client.js';

export const CLUSTER_SLOTS = 16384;

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/** The hash slot Redis Cluster stores `key` in. */
export function slotOf(key: string | Buffer): number {
  return calculateSlot(key);
}

/**
 * A short string that hashes to `slot`, so that a key tagged `{tag}` lands
 * there. Found once per slot by counting through base-36 strings (every slot
 * is hit within the first 90 000, in a few milliseconds), and at most 16384
 * tags exist, so the cache never grows with the number of lock names.
 */
export function tagForSlot(slot: number): string {
  let tag = tags.get(slot);
  if (tag === undefined) {
    fillTagsUpTo(slot);
    tag = tags.get(slot)!;
  }
  return tag;
}

// A memo of a pure function: a second copy of the package (the other build)
// computes the same tags into its own.
const tags = new Map<number, string>();
let nextCandidate = 0;

function fillTagsUpTo(slot: number): void {
  // Every slot is reached well before this bound; it only keeps the loop finite.
  const limit = nextCandidate + 1_000_000;
  while (!tags.has(slot) && nextCandidate < limit) {
    const candidate = nextCandidate.toString(36);
    nextCandidate++;
    const candidateSlot = calculateSlot(candidate);
    if (!tags.has(candidateSlot)) tags.set(candidateSlot, candidate);
  }
  if (!tags.has(slot)) throw new RangeError(`no hash tag found for slot ${slot}`);
}
