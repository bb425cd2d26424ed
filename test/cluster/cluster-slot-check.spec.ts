import calculateSlot from 'cluster-key-slot';
import { CLUSTER_SLOTS, slotOf, tagForSlot } from '../../lib/connection/cluster-slots.js';
import { TransactionCrossSlotError } from '../../lib/index.js';
import { checkSingleSlot, commandKeys } from '../../lib/transactions/cluster-slot-check.js';

describe('Cluster slot checks (no Redis needed)', () => {
  it('finds the keys of a queued command where ioredis routes by them', () => {
    expect(commandKeys(['set', 'k', 'v'])).toEqual(['k']);
    expect(commandKeys(['mset', { a: 1, b: 2 }])).toEqual(['a', 'b']);
    expect(commandKeys(['mset', new Map([['a', 1]])])).toEqual(['a']);
    expect(commandKeys(['hset', 'h', { f: 1, g: 2 }])).toEqual(['h']);
    expect(commandKeys(['del', ['a', 'b'], 'c'])).toEqual(['a', 'b', 'c']);
    expect(commandKeys(['getBuffer', 'b'])).toEqual(['b']);
    expect(commandKeys(['call', 'INCRBY', 'x', 2])).toEqual(['x']);
    expect(commandKeys(['eval', 'return 1', 2, 'k1', 'k2', 'arg'])).toEqual(['k1', 'k2']);
    expect(commandKeys(['ping'])).toEqual([]);
    expect(commandKeys(['notACommand', 'x'])).toEqual([]);
    expect(commandKeys(['get', 'k'], 'app:')).toEqual(['app:k']);
  });

  it('accepts keys of one slot, hash tags included, and names the slot', () => {
    const slot = checkSingleSlot('t', ['{user:42}:a'], [['set', '{user:42}:b', 1]]);
    expect(slot).toBe(calculateSlot('user:42'));
    expect(checkSingleSlot('t', [], [['ping']])).toBeUndefined();
  });

  it('refuses keys of several slots with every key, its slot and a hash tag hint', () => {
    const attempt = () =>
      checkSingleSlot(
        'Svc.m',
        ['w'],
        [
          ['mset', { a: 1 }],
          ['incr', 'w'],
        ],
        'p:',
      );
    expect(attempt).toThrow(TransactionCrossSlotError);
    try {
      attempt();
    } catch (error) {
      const { keys, message } = error as TransactionCrossSlotError;
      expect(keys).toEqual([
        { key: 'p:w', slot: calculateSlot('p:w') },
        { key: 'p:a', slot: calculateSlot('p:a') },
      ]);
      expect(message).toContain('Svc.m');
      expect(message).toContain(`"p:a" is in slot ${calculateSlot('p:a')}`);
      expect(message).toContain('Nothing was sent');
      expect(message).toContain('{user:42}');
    }
  });

  it('keeps binary keys as bytes when hashing them', () => {
    const key = Buffer.from([0xff, 0x00, 0x7b]);
    expect(slotOf(key)).toBe(calculateSlot(key));
    expect(() =>
      checkSingleSlot(
        't',
        [],
        [
          ['set', key, 1],
          ['set', 'other', 1],
        ],
      ),
    ).toThrow(TransactionCrossSlotError);
  });

  it('has a short hash tag for every slot, which lands in that slot', () => {
    for (let slot = 0; slot < CLUSTER_SLOTS; slot++) {
      const tag = tagForSlot(slot);
      expect(tag.length).toBeLessThanOrEqual(4);
      if (slotOf(`x{${tag}}y`) !== slot) throw new Error(`tag ${tag} misses slot ${slot}`);
    }
  });
});
