import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { runOrThrow } from './run-process.js';

export const repoRoot = resolve(__dirname, '../..');

/** The fields of this repository's package.json that packaging is about. */
export interface Manifest {
  name: string;
  version: string;
  license: string;
  main: string;
  types: string;
  typesVersions?: Record<string, Record<string, string[]>>;
  exports: unknown;
  files: string[];
  engines: { node: string };
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

export function readManifest(): Manifest {
  return JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Manifest;
}

interface PackReport {
  filename: string;
  files: { path: string }[];
}

/*
 * Scripts are skipped: `npm test` has just built dist, and the prepack
 * rebuild would delete dist under the other test files that import it.
 */
async function pack(extraArgs: string[]): Promise<PackReport> {
  const { stdout } = await runOrThrow('npm', ['pack', '--json', '--ignore-scripts', ...extraArgs], {
    cwd: repoRoot,
    timeoutMs: 60_000,
  });
  const [report] = JSON.parse(stdout) as PackReport[];
  return report!;
}

/** The paths `npm pack` would put in the tarball, relative to the package root. */
export async function packedFileList(): Promise<string[]> {
  const report = await pack(['--dry-run']);
  return report.files.map((file) => file.path).sort();
}

/** Packs the library into `destination` and returns the tarball's path. */
export async function packTarball(destination: string): Promise<string> {
  const report = await pack(['--pack-destination', destination]);
  return join(destination, report.filename);
}

/** Every file an `exports` map points at, through nested conditions. */
export function exportTargets(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports];
  if (exports === null || typeof exports !== 'object') return [];
  return Object.values(exports).flatMap(exportTargets);
}

/**
 * Unpacks the tarball as `node_modules/<name>` of `appDir`, as npm would, and
 * links `linked` from this repository's node_modules beside it. Node follows
 * the links to their real paths, so whatever those packages need resolves
 * from this repository without being linked, and the library sees only what
 * it declares.
 */
export async function installTarball(
  appDir: string,
  tarball: string,
  linked: readonly string[],
): Promise<void> {
  const { name } = readManifest();
  const target = join(appDir, 'node_modules', name);
  mkdirSync(target, { recursive: true });
  await runOrThrow('tar', ['-xzf', tarball, '-C', target, '--strip-components=1'], {
    cwd: appDir,
    timeoutMs: 30_000,
  });
  for (const dependency of linked) {
    const source = join(repoRoot, 'node_modules', dependency);
    if (!existsSync(source)) {
      throw new Error(`${dependency} is not installed in ${repoRoot}: run npm install`);
    }
    const link = join(appDir, 'node_modules', dependency);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(source, link, 'dir');
  }
}

/** The library's dependencies and the peers installed here, which an app beside it has. */
export function declaredDependencies(): string[] {
  const manifest = readManifest();
  const peers = Object.keys(manifest.peerDependencies).filter(
    (peer) =>
      !manifest.peerDependenciesMeta?.[peer]?.optional ||
      existsSync(join(repoRoot, 'node_modules', peer)),
  );
  return [...Object.keys(manifest.dependencies), ...peers];
}
