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

export function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Runs `measure` `times` times and keeps, for each figure, the median over the runs. */
export async function medianOf<T extends Record<string, number | boolean>>(
  times: number,
  measure: () => Promise<T>,
): Promise<T> {
  const runs: T[] = [];
  for (let i = 0; i < times; i++) runs.push(await measure());
  const result: Record<string, number | boolean> = {};
  for (const key of Object.keys(runs[0]!)) {
    const values = runs.map((run) => run[key]!);
    result[key] =
      typeof values[0] === 'boolean' ? values.every(Boolean) : median(values as number[]);
  }
  return result as T;
}

export function fmt(value: number | boolean, digits = 1): string {
  if (typeof value === 'boolean') return value ? 'yes' : 'NO';
  if (!Number.isFinite(value)) return '—';
  return value >= 1000 ? Math.round(value).toLocaleString('en-US') : value.toFixed(digits);
}

export function table(headers: string[], rows: (string | number | boolean)[][]): string {
  const cells = rows.map((row) => row.map((c) => (typeof c === 'string' ? c : fmt(c))));
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...cells.map(line)].join('\n');
}
