import { LinkedSet } from '../../lib/shared/linked-set.js';

const items = (count: number) => Array.from({ length: count }, (_, id) => ({ id }));
const ids = (set: LinkedSet<{ id: number }>) => [...set].map((item) => item.id);

describe('LinkedSet, for objects that come and go with every lock', () => {
  it('adds, deletes from any place, and lists newest first', () => {
    const set = new LinkedSet<{ id: number }>();
    const [a, b, c, d] = items(4);
    for (const item of [a!, b!, c!, d!]) set.add(item);
    expect(ids(set)).toEqual([3, 2, 1, 0]);
    expect(set.delete(c!)).toBe(true);
    expect(set.delete(d!)).toBe(true);
    expect(set.delete(a!)).toBe(true);
    expect(ids(set)).toEqual([1]);
    expect(set.size).toBe(1);
    set.add(a!);
    expect(ids(set)).toEqual([0, 1]);
  });

  it('ignores an item added twice, and one deleted twice or never added', () => {
    const set = new LinkedSet<{ id: number }>();
    const [a, b] = items(2);
    set.add(a!);
    set.add(a!);
    expect(set.size).toBe(1);
    expect(set.delete(b!)).toBe(false);
    expect(set.delete(a!)).toBe(true);
    expect(set.delete(a!)).toBe(false);
    expect(set.size).toBe(0);
    expect(ids(set)).toEqual([]);
  });

  it('refuses an item that is in another set, and lets the loop delete the item it was given', () => {
    const one = new LinkedSet<{ id: number }>();
    const other = new LinkedSet<{ id: number }>();
    const [a, b, c] = items(3);
    one.add(a!);
    one.add(b!);
    one.add(c!);
    expect(() => other.add(b!)).toThrow(/another LinkedSet/);
    expect(other.has(b!)).toBe(false);
    expect(one.has(b!)).toBe(true);
    expect(ids(one)).toEqual([2, 1, 0]);
    for (const item of one) one.delete(item);
    expect(one.size).toBe(0);
    expect(ids(one)).toEqual([]);
  });

  it('visits every item still in the set when the loop deletes others, and none it deleted', () => {
    const set = new LinkedSet<{ id: number }>();
    const all = items(5);
    for (const item of all) set.add(item);
    const visited: number[] = [];
    for (const item of set) {
      visited.push(item.id);
      // Visiting 4 deletes 3 and 1, not reached yet; 3's neighbours are still visited.
      if (item.id === 4) {
        set.delete(all[3]!);
        set.delete(all[1]!);
      }
    }
    expect(visited).toEqual([4, 2, 0]);
  });
});
