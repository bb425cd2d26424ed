import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** Every public name of `nestjs-redis-tx/testing`. */
const documentedExports = [
  'RedisTxTestingModule',
  'TestRedis',
  'ThrowawayRedis',
  'expireLock',
  'LockProbe',
  'expectLockedDuring',
  'RedisServerError',
  'NoRedisInTestError',
  'LockExpectationError',
];

/** The files a built module imports, followed to the end. */
function importGraph(entry: string, seen = new Set<string>()): Set<string> {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  const source = readFileSync(entry, 'utf8');
  for (const [, specifier] of source.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    importGraph(resolve(dirname(entry), specifier!), seen);
  }
  return seen;
}

describe('the built nestjs-redis-tx/testing entry', () => {
  it('exports every documented name to an ESM importer, through the package exports', () => {
    const script = `
      const m = await import('nestjs-redis-tx/testing');
      const { RedisTxError } = await import('nestjs-redis-tx');
      console.log(JSON.stringify(Object.keys(m).sort()));
      console.log(Object.values(m).filter((v) => typeof v === 'function' && v.prototype instanceof RedisTxError).length);`;
    const [names, errors] = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    })
      .trim()
      .split('\n');
    expect(JSON.parse(names!)).toEqual([...documentedExports].sort());
    expect(Number(errors)).toBe(documentedExports.filter((n) => n.endsWith('Error')).length);
  });

  it('is not loaded by the main entry', () => {
    const dist = resolve(__dirname, '../../dist/esm');
    const loaded = [...importGraph(join(dist, 'index.js'))];
    expect(loaded.length).toBeGreaterThan(10);
    expect(loaded.filter((file) => file.startsWith(join(dist, 'testing')))).toEqual([]);
  });
});
