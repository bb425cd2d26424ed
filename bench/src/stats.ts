/** Small statistics for the benchmark tables. */

export function median(values: number[]): number {
  return percentile(values, 50);
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

/** A trial's figures: numbers, and yes/no checks such as "counter exact". */
export type Figures = Record<string, number | boolean>;

/** For each figure, the median over the runs (a check holds only if it held in every run). */
export function medianFigures<T extends Figures>(runs: T[]): T {
  const result: Figures = {};
  for (const key of Object.keys(runs[0]!)) {
    const values = runs.map((run) => run[key]!);
    result[key] =
      typeof values[0] === 'boolean' ? values.every(Boolean) : median(values as number[]);
  }
  return result as T;
}

/**
 * Runs `trial` for every item once per repetition, after one warm-up round
 * whose results are dropped (if `warmUp`), and returns each item's median
 * figures. The
 * order rotates from one repetition to the next, so that JIT warm-up, a noisy
 * moment or a slow drift of the machine does not favour one item.
 */
export async function interleaved<I extends { name: string }, T extends Figures>(
  items: readonly I[],
  { repetitions, warmUp }: { repetitions: number; warmUp: boolean },
  trial: (item: I) => Promise<T>,
): Promise<Map<string, T>> {
  const runs = new Map<string, T[]>(items.map((item) => [item.name, []]));
  if (warmUp) for (const item of items) await trial(item);
  for (let repetition = 0; repetition < repetitions; repetition++) {
    const offset = repetition % items.length;
    for (const item of [...items.slice(offset), ...items.slice(0, offset)]) {
      runs.get(item.name)!.push(await trial(item));
    }
  }
  return new Map([...runs].map(([name, results]) => [name, medianFigures(results)]));
}
