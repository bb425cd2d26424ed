import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const repoRoot = resolve(__dirname, '../..');
const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');

export interface SampleBuild {
  /** The built `main.js`; read it inside a hook or a test. */
  readonly main: string;
}

/**
 * Builds the sample app as `npm run sample` does (`tsc -p
 * sample-app/tsconfig.json`) in beforeAll and removes the build in afterAll.
 * It goes to a directory of its own under the repository's (ignored) `.tmp/`,
 * where Node still finds `node_modules` and `"type": "module"`, so a test run
 * never overwrites the `sample-app/dist` someone is running.
 */
export function useSampleBuild(): SampleBuild {
  let outDir: string | undefined;
  beforeAll(async () => {
    mkdirSync(join(repoRoot, '.tmp'), { recursive: true });
    outDir = mkdtempSync(join(repoRoot, '.tmp', 'sample-e2e-'));
    try {
      await promisify(execFile)(
        process.execPath,
        [tsc, '-p', 'sample-app/tsconfig.json', '--outDir', outDir],
        { cwd: repoRoot },
      );
    } catch (error) {
      const { stdout } = error as { stdout?: string };
      throw new Error(`tsc -p sample-app/tsconfig.json failed:\n${stdout ?? String(error)}`, {
        cause: error,
      });
    }
  }, 120_000);
  afterAll(() => {
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });
  return {
    get main(): string {
      if (!outDir) throw new Error('useSampleBuild: the sample is built in beforeAll');
      return join(outDir, 'sample-app/src/main.js');
    },
  };
}
