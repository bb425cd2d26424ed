import { mkdirSync, writeFileSync } from 'node:fs';
import type { Contender } from './contenders/index.js';
import type { Figures } from './stats.js';

export function fmt(value: number | boolean | string, digits = 1): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'yes' : 'NO';
  if (!Number.isFinite(value)) return '—';
  return Math.abs(value) >= 1000
    ? Math.round(value).toLocaleString('en-US')
    : value.toFixed(digits);
}

export const times = (ratio: number) => `${ratio.toFixed(2)}×`;

export function table(headers: string[], rows: (string | number | boolean)[][]): string {
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [
    line(headers),
    line(headers.map(() => '---')),
    ...rows.map((r) => line(r.map((c) => fmt(c)))),
  ].join('\n');
}

/** Which way a figure improves. */
export type Better = 'lower' | 'higher';

/** A figure of one contender set against the floor and against the best peer of the same run. */
export interface Versus {
  value: number;
  toRaw: number;
  toBestPeer: number;
  bestPeer: string;
  bestPeerValue: number;
}

/** Results of one lock workload: the median figures of each contender, by name. */
export class LockResults<T extends Figures> {
  constructor(
    readonly contenders: readonly Contender[],
    readonly byName: Map<string, T>,
  ) {}

  figure(contender: Contender, key: keyof T & string): number {
    return this.byName.get(contender.name)![key] as number;
  }

  versus(contender: Contender, key: keyof T & string, better: Better): Versus {
    const raw = this.contenders.find((c) => c.kind === 'floor')!;
    const peers = this.contenders.filter((c) => c.kind === 'peer');
    const pick = (a: Contender, b: Contender) => {
      const [x, y] = [this.figure(a, key), this.figure(b, key)];
      return (better === 'lower' ? x <= y : x >= y) ? a : b;
    };
    const best = peers.reduce(pick);
    const value = this.figure(contender, key);
    return {
      value,
      toRaw: value / this.figure(raw, key),
      toBestPeer: value / this.figure(best, key),
      bestPeer: best.name,
      bestPeerValue: this.figure(best, key),
    };
  }

  /**
   * A markdown table: one row per contender with `shown` figures, then for
   * each `compared` figure a "× raw / × best peer" cell.
   */
  table(
    shown: [header: string, key: keyof T & string][],
    compared: [header: string, key: keyof T & string, better: Better][],
  ): string {
    return table(
      ['library', ...shown.map(([h]) => h), ...compared.map(([h]) => `${h} × raw / × best peer`)],
      this.contenders.map((c) => [
        c.name,
        ...shown.map(([, key]) => this.byName.get(c.name)![key]!),
        ...compared.map(([, key, better]) => {
          const v = this.versus(c, key, better);
          return `${v.toRaw.toFixed(2)} / ${v.toBestPeer.toFixed(2)}`;
        }),
      ]),
    );
  }
}

/** The printed report, kept to be written to a markdown file at the end. */
export class Report {
  private readonly lines: string[] = [];

  say(text = ''): void {
    console.log(text);
    this.lines.push(text);
  }

  write(file: URL): void {
    mkdirSync(new URL('.', file), { recursive: true });
    writeFileSync(file, `${this.lines.join('\n')}\n`);
  }
}
