import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { useRedisServer } from '../support/redis.js';
import { consumerSource, consumerTsconfig } from './consumer-app.js';
import { dualLoadSource, esmSpecSource } from './dual-load-app.js';
import {
  declaredDependencies,
  installTarball,
  packTarball,
  readManifest,
  repoRoot,
} from './packed-package.js';
import { runOrThrow, runProcess } from './run-process.js';

const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

/** What Node prints, on some 20.x and 22.x releases, when require() loads an ES module. */
const requireOfEsmWarning = [
  /^\(node:\d+\) ExperimentalWarning: .*ES Module.*require\(\)/,
  /^Support for loading ES Module in require\(\) is an experimental feature/,
  /^\(Use `node --trace-warnings \.\.\.` to show where the warning was created\)$/,
];

function strayStderr(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => !requireOfEsmWarning.some((pattern) => pattern.test(line)));
}

/** An app in `dir` of the given module type, with the packed library installed as a user's would be. */
async function createConsumer(dir: string, type: 'module' | 'commonjs', tarball: string) {
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: `consumer-${type}`, private: true, type }),
  );
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(consumerTsconfig));
  writeFileSync(join(dir, 'src', 'main.ts'), consumerSource);
  const linked = [...declaredDependencies(), '@types/node'];
  if (type === 'module') {
    // NestJS 12 apps are ES modules: this one also tests itself, compiled in the same tsc run.
    writeFileSync(join(dir, 'src', 'app.spec.ts'), esmSpecSource);
    linked.push('@nestjs/testing', '@nestjs/platform-express');
  }
  await installTarball(dir, tarball, linked);
}

describe('an application that installs the packed library', () => {
  const bed = useRedisServer();
  let workDir: string;
  let tarball: string;
  let observer: Redis;

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'redis-tx-consumers-'));
    tarball = await packTarball(workDir);
    observer = new Redis(bed.server.url);
  });
  bed.beforeStop(() => observer?.quit());
  beforeEach(async () => {
    await observer.flushall();
  });
  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('runs on a Node that the engines field allows, which loads ES modules through require()', () => {
    // 20.19 is the first 20.x where require() of an ES module needs no flag.
    expect(readManifest().engines.node).toBe('>=20.19.0');
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    expect(major > 20 || (major === 20 && minor >= 19)).toBe(true);
  });

  it.each([
    ['ES module', 'module', /\bimport\b.*\bfrom ['"]nestjs-redis-tx['"]/],
    ['CommonJS', 'commonjs', /\brequire\(['"]nestjs-redis-tx['"]\)/],
  ] as const)(
    'as %s: compiles against its types, boots Nest, locks, runs transactions and exits by itself; as ES module, passes its own spec',
    async (_label, type, loadsThePackage) => {
      const dir = join(workDir, type);
      await createConsumer(dir, type, tarball);

      // Compiling is the type test: the source has @ts-expect-error lines that only hold with real types.
      await runOrThrow(process.execPath, [tsc, '-p', 'tsconfig.json'], {
        cwd: dir,
        timeoutMs: 60_000,
      });
      const emitted = readFileSync(join(dir, 'dist', 'main.js'), 'utf8');
      expect(emitted).toMatch(loadsThePackage);

      // No NODE_OPTIONS: it has to work without flags. The app must exit by itself once closed.
      const env = { ...process.env, NODE_OPTIONS: '' };
      const run = await runProcess(process.execPath, ['dist/main.js', bed.server.url, type], {
        cwd: dir,
        timeoutMs: 30_000,
        env,
      });
      expect({ code: run.code, stderr: strayStderr(run.stderr) }).toEqual({ code: 0, stderr: [] });
      const line = run.stdout.split('\n').find((text) => text.startsWith('consumer '));
      expect(JSON.parse(line!.slice('consumer '.length))).toEqual({
        fencingToken: expect.any(Number),
        busy: true,
        released: true,
        stillLocked: false,
        tx: { value: 'queued', replies: ['OK', 'applied'] },
        counted: [1, 2],
      });
      expect(await observer.mget(`${type}:visits:home`, `${type}:tx`)).toEqual(['2', 'applied']);
      // No lock is left behind; the fencing counters stay, by design.
      expect((await observer.keys('*')).sort()).toEqual(
        [`${type}:tx`, `${type}:visits:home`, 'lock:fence'].sort(),
      );
      if (type === 'module') await runsItsSpec(dir);
    },
  );

  /**
   * The ES module app's spec (dual-load-app.ts) under Node's own test runner,
   * which needs no transform and no configuration: it boots RedisTxModule
   * in a testing module and serves HTTP from it.
   */
  async function runsItsSpec(dir: string): Promise<void> {
    const run = await runProcess(process.execPath, ['--test', 'dist/app.spec.js'], {
      cwd: dir,
      timeoutMs: 60_000,
      env: { ...process.env, NODE_OPTIONS: '', REDIS_URL: bed.server.url },
    });
    expect({ code: run.code, stderr: strayStderr(run.stderr) }).toEqual({ code: 0, stderr: [] });
    expect(run.stdout).toMatch(/^# pass 2$/m);
    expect(run.stdout).toMatch(/^# fail 0$/m);
    expect(await observer.get('esm:visits')).toBe('3');
  }

  it('loads both builds in one process, require() and import(), with nothing split between them', async () => {
    const dir = join(workDir, 'dual');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'dual', private: true }));
    writeFileSync(join(dir, 'dual.cjs'), dualLoadSource);
    await installTarball(dir, tarball, declaredDependencies());

    const run = await runProcess(process.execPath, ['dual.cjs', bed.server.url], {
      cwd: dir,
      timeoutMs: 30_000,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect({ code: run.code, stderr: strayStderr(run.stderr) }).toEqual({ code: 0, stderr: [] });
    const line = run.stdout.split('\n').find((text) => text.startsWith('dual '));
    const report = JSON.parse(line!.slice('dual '.length)) as { errorClasses: number };
    expect(report).toEqual({
      twoCopies: true,
      required: 'dist/cjs/index.js',
      // The ES module build's decorators ran in the CommonJS module's transaction,
      // and the CommonJS build's @Transactional joined it: one EXEC of both commands.
      active: true,
      commits: [2, 2],
      // Its @Locked met a lock taken through the CommonJS LockService, and the
      // refusal is an instance of either build's class.
      refused: {
        reason: 'busy',
        esmClass: true,
        cjsClass: true,
        esmBase: true,
        otherEsmClass: false,
      },
      errorClasses: report.errorClasses,
      matches: expect.any(Number),
      mismatches: [],
      plainError: false,
      lookalike: false,
    });
    expect(report.errorClasses).toBeGreaterThan(10);
    expect(await observer.lrange('dual:ledger', 0, -1)).toEqual(['first', 'third']);
    expect(await observer.get('dual:count')).toBe('2');
  });
});
