import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Redis } from 'ioredis';
import { useRedisServer } from '../support/redis.js';
import {
  nest11BuildTsconfig,
  nest11JestConfig,
  nest11Source,
  nest11SpecSource,
  nest11Tsconfig,
} from './nest11-app.js';
import { packTarball, readManifest } from './packed-package.js';
import { runOrThrow, runProcess } from './run-process.js';

/** The lowest release of the first range in a `^a || ^b` peer range. */
function lowestOf(range: string): string {
  return range.split('||')[0]!.trim().replace(/^\^/, '');
}

function installedVersion(appDir: string, name: string): string {
  const manifest = join(appDir, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

/*
 * NestJS 11 is in the peer range but is not what this repository develops
 * on, so this installs it from the registry into a temp app, beside the
 * packed library and the lowest ioredis the peer range allows, and runs an
 * HTTP app on it. The app is a CommonJS project as `nest new` makes it, and
 * is tested as `nest new` sets up: Jest with ts-jest, nothing configured
 * for this package. Both load the package's CommonJS build.
 */
describe('the packed library on NestJS 11 and the lowest ioredis of its peer range', () => {
  const bed = useRedisServer();
  let workDir: string;
  let observer: Redis;

  beforeAll(() => {
    workDir = mkdtempSync(join(tmpdir(), 'redis-tx-nest11-'));
    observer = new Redis(bed.server.url);
  });
  bed.beforeStop(() => observer?.quit());
  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('transfers under WATCH, answers 409 with a code and logs no error for a busy @Locked handler and a conflict, across two instances; its Jest spec passes', async () => {
    const manifest = readManifest();
    const tarball = await packTarball(workDir);
    const appDir = join(workDir, 'app');
    mkdirSync(join(appDir, 'src'), { recursive: true });
    const ioredis = lowestOf(manifest.peerDependencies['ioredis']!);
    const dependencies = {
      '@nestjs/common': '^11.0.0',
      '@nestjs/core': '^11.0.0',
      '@nestjs/platform-express': '^11.0.0',
      'reflect-metadata': '^0.2.0',
      rxjs: '^7.1.0',
      ioredis,
      [manifest.name]: `file:../${basename(tarball)}`,
    };
    // What `nest new` puts beside Nest 11 for building and testing.
    const devDependencies = {
      '@nestjs/testing': '^11.0.0',
      '@types/jest': '^30.0.0',
      '@types/node': '^20.19.0',
      jest: '^30.0.0',
      'ts-jest': '^29.2.5',
      typescript: '^5.7.3',
    };
    writeFileSync(
      join(appDir, 'package.json'),
      JSON.stringify({
        name: 'nest11-app',
        private: true,
        dependencies,
        devDependencies,
        jest: nest11JestConfig,
      }),
    );
    writeFileSync(join(appDir, 'tsconfig.json'), JSON.stringify(nest11Tsconfig));
    writeFileSync(join(appDir, 'tsconfig.build.json'), JSON.stringify(nest11BuildTsconfig));
    writeFileSync(join(appDir, 'src', 'main.ts'), nest11Source);
    writeFileSync(join(appDir, 'src', 'redis-tx.spec.ts'), nest11SpecSource);

    // --prefix pins the install to the temp app even under `npm test`, whose
    // environment describes this repository. No --legacy-peer-deps: npm must
    // accept our peer ranges as they are.
    await runOrThrow(
      'npm',
      ['install', '--prefix', appDir, '--no-audit', '--no-fund', '--prefer-offline'],
      { cwd: appDir, timeoutMs: 300_000 },
    );
    expect(installedVersion(appDir, '@nestjs/core')).toMatch(/^11\./);
    expect(installedVersion(appDir, '@nestjs/common')).toMatch(/^11\./);
    expect(installedVersion(appDir, 'ioredis')).toBe(ioredis);

    // As `nest build` does, with the app's TypeScript (module: commonjs, so
    // node10 resolution: main, types and typesVersions), and against NestJS
    // 11's and that ioredis' declaration files, ours included.
    const tsc = join(appDir, 'node_modules', 'typescript', 'bin', 'tsc');
    await runOrThrow(
      process.execPath,
      [tsc, '-p', 'tsconfig.build.json', '--skipLibCheck', 'false'],
      {
        cwd: appDir,
        timeoutMs: 60_000,
      },
    );
    expect(readFileSync(join(appDir, 'dist', 'main.js'), 'utf8')).toMatch(
      /\brequire\("nestjs-redis-tx"\)/,
    );

    // `npm test` of a `nest new` project: its spec boots RedisTxModule under Jest.
    const jest = await runProcess(
      process.execPath,
      [join('node_modules', 'jest', 'bin', 'jest.js')],
      {
        cwd: appDir,
        timeoutMs: 90_000,
        env: { ...process.env, NODE_OPTIONS: '', REDIS_URL: bed.server.url },
      },
    );
    expect({ code: jest.code, stderr: jest.stderr }).toEqual({
      code: 0,
      stderr: expect.stringMatching(/^Tests: +2 passed, 2 total$/m),
    });

    await observer.mset('acct:alice', 5, 'acct:bob', 0);
    const run = await runOrThrow(process.execPath, ['dist/main.js', bed.server.url], {
      cwd: appDir,
      timeoutMs: 30_000,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    const line = run.stdout.split('\n').find((text) => text.startsWith('nest11 '));
    expect(JSON.parse(line!.slice('nest11 '.length))).toEqual({
      // 12 concurrent transfers of 1 from 5: WATCH lets exactly 5 through, never an overdraft.
      transfers: [...Array<number>(5).fill(201), ...Array<number>(7).fill(400)],
      // The client is told what, with a stable code; the lock's name and the advice are for the logs.
      whileHeld: {
        status: 409,
        body: { statusCode: 409, code: 'LOCK_BUSY', message: 'The resource is busy; try again.' },
      },
      holder: 201,
      afterRelease: 201,
      conflict: {
        status: 409,
        body: {
          statusCode: 409,
          code: 'TRANSACTION_CONFLICT',
          message: 'The data changed while the request ran; try again.',
        },
      },
      // Expected refusals are not errors: Nest's exception handler logs nothing for them.
      errorLines: [],
    });
    expect(await observer.mget('acct:alice', 'acct:bob', 'jest:wallet:a')).toEqual(['0', '5', '7']);
    // No lock is left behind; the fencing counters stay, by design.
    expect((await observer.keys('*')).sort()).toEqual([
      'acct:alice',
      'acct:bob',
      'contended',
      'jest:wallet:a',
      'lock:fence',
    ]);
  }, 420_000);
});
