import { Redis } from 'ioredis';
import { FencedResource } from '../support/fenced-resource.js';
import { findOverlaps, OverlapChecker, parseIntervals } from '../support/overlap-checker.js';
import { useRedisServer } from '../support/redis.js';

// The instruments of the fault tests must be able to fail: shown here.
describe('the overlap checker', () => {
  it('finds intervals that overlap or touch, and none in a strict sequence', () => {
    const sequence = parseIntervals([
      ['a', '10', '20'],
      ['b', '21', '30'],
      ['c', '31', '31'],
    ]);
    expect(findOverlaps(sequence)).toEqual([]);

    const [a, b, c] = parseIntervals([
      ['a', '10', '50'],
      ['b', '21', '30'], // inside a
      ['c', '50', '60'], // starts as a ends
    ]);
    expect(findOverlaps([c!, b!, a!])).toEqual([
      [a, b],
      [a, c],
    ]);
  });

  it('records intervals on the monotonic clock in this process', () => {
    const checker = new OverlapChecker();
    const outer = checker.enter('outer');
    checker.enter('inner')();
    outer();
    expect(checker.intervals.map((interval) => interval.who)).toEqual(['inner', 'outer']);
    expect(checker.overlaps()).toHaveLength(1);
  });
});

describe('the fenced resource', () => {
  const bed = useRedisServer();
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(bed.server.url);
  });
  bed.beforeStop(() => redis.quit());

  it('accepts only a fencing token higher than the last one it accepted', async () => {
    const resource = new FencedResource(redis, 'checked');
    expect(await resource.write(5, 'five')).toBe(true);
    expect(await resource.write(5, 'five again')).toBe(false);
    expect(await resource.write(3, 'stale')).toBe(false);
    expect(await resource.write(6, 'six')).toBe(true);
    expect(await resource.state()).toEqual({ value: 'six', token: 6, accepted: 2, rejected: 2 });
  });
});
