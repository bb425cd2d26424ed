/** Time spent inside a critical section, on the system-wide monotonic clock. */
export interface Interval {
  /** Who was inside: a worker's name. */
  who: string;
  /** process.hrtime.bigint() on entry and on exit: CLOCK_MONOTONIC on Linux, comparable across processes on one machine. */
  start: bigint;
  end: bigint;
}

/** The wire form of an interval, for a forked process to report over stdout. */
export type SerializedInterval = [who: string, start: string, end: string];

export function parseIntervals(serialized: readonly SerializedInterval[]): Interval[] {
  return serialized.map(([who, start, end]) => ({ who, start: BigInt(start), end: BigInt(end) }));
}

/**
 * Every pair of intervals that overlap (empty when the section was mutually
 * exclusive). Sorted by entry, intervals exclude each other exactly when each
 * one starts after every earlier one has ended.
 */
export function findOverlaps(intervals: readonly Interval[]): [Interval, Interval][] {
  const sorted = [...intervals].sort((a, b) =>
    a.start < b.start ? -1 : a.start > b.start ? 1 : 0,
  );
  const overlaps: [Interval, Interval][] = [];
  let latest: Interval | undefined;
  for (const interval of sorted) {
    if (interval.end < interval.start)
      throw new Error(`interval of ${interval.who} ends before it starts`);
    if (latest && interval.start <= latest.end) overlaps.push([latest, interval]);
    if (!latest || interval.end > latest.end) latest = interval;
  }
  return overlaps;
}

/** Records intervals in this process: `enter()` on entry, the returned function on exit. */
export class OverlapChecker {
  readonly intervals: Interval[] = [];

  enter(who: string): () => void {
    const start = process.hrtime.bigint();
    return () => void this.intervals.push({ who, start, end: process.hrtime.bigint() });
  }

  overlaps(): [Interval, Interval][] {
    return findOverlaps(this.intervals);
  }
}
