import { slotOf, tagForSlot } from '../connection/cluster-slots.js';
import type { LockRedisKeys } from './lock-keys.js';

/**
 * The keys a lock shares with other locks: the fencing counter and the base
 * of the hand-off channels (each application listens on the base followed by
 * ":<application id>", see handOffChannel). On one node there is one of
 * each. On Redis Cluster a script may only touch keys of one slot, so each
 * slot gets its own counter and channel base, tagged to land in the slot of
 * the lock's own keys. A lock name
 * never changes slot, so its fencing tokens still only ever increase; and
 * with at most 16384 slots, these keys never multiply with lock names.
 */
export interface LockSlotKeys {
  fence(keys: LockRedisKeys): string;
  channelBase(keys: LockRedisKeys): string;
  /** True when channels are per slot, published with SPUBLISH and read with SSUBSCRIBE. */
  readonly sharded: boolean;
}

export function lockSlotKeys(prefix: string, cluster: boolean): LockSlotKeys {
  if (!cluster) {
    const fence = `${prefix}fence`;
    const channel = `${prefix}handoff`;
    return { fence: () => fence, channelBase: () => channel, sharded: false };
  }
  const tagOf = (keys: LockRedisKeys) => tagForSlot(slotOf(keys.writer));
  return {
    fence: (keys) => `${prefix}fence:{${tagOf(keys)}}`,
    channelBase: (keys) => `${prefix}handoff:{${tagOf(keys)}}`,
    sharded: true,
  };
}

/** The channel one application hears its hand-offs on; the lock scripts build the same name from a waiter's token. */
export function handOffChannel(base: string, application: string): string {
  return `${base}:${application}`;
}
