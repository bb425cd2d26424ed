import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { exportTargets, packedFileList, readManifest, repoRoot } from './packed-package.js';

/** lib/**\/*.ts without declaration files, relative to lib, with `/` separators. */
function librarySources(): string[] {
  return readdirSync(join(repoRoot, 'lib'), { recursive: true, encoding: 'utf8' })
    .map((path) => path.split('\\').join('/'))
    .filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts'));
}

/** The package a bare specifier names: `@scope/name` or `name`, without a subpath. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** Every module specifier of an import, export-from or dynamic import in `source`. */
function specifiersIn(source: string): string[] {
  const pattern = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g;
  return [...source.matchAll(pattern)].map((match) => match[1]!);
}

describe('what npm pack ships', () => {
  let files: string[];
  beforeAll(async () => {
    files = await packedFileList();
  });

  it('is package.json, README.md, LICENSE and compiled JavaScript with its types, nothing else', () => {
    const besideDist = files.filter((path) => !path.startsWith('dist/'));
    expect(besideDist).toEqual(['LICENSE', 'README.md', 'package.json']);
    // No source maps: they would point at lib/*.ts, which is not shipped.
    const unexpected = files.filter(
      (path) =>
        path.startsWith('dist/') &&
        !/\.(?:d\.ts|js)$/.test(path) &&
        path !== 'dist/cjs/package.json',
    );
    expect(unexpected).toEqual([]);
    const fromElsewhere = files.filter((path) =>
      /(?:^|\/)(?:test|tools|bench|sample-app|lib|node_modules)\/|\.spec\./.test(path),
    );
    expect(fromElsewhere).toEqual([]);
  });

  it('has in dist exactly what lib compiles to, once per module system, so no stale or foreign file slips in', () => {
    const expected = librarySources()
      .flatMap((source) =>
        ['esm', 'cjs'].flatMap((build) => {
          const stem = `dist/${build}/${source.slice(0, -'.ts'.length)}`;
          return [`${stem}.d.ts`, `${stem}.js`];
        }),
      )
      .concat('dist/cjs/package.json')
      .sort();
    const shipped = files.filter((path) => path.startsWith('dist/'));
    // A difference here usually means dist is older than lib: run `npm run build`.
    expect(shipped).toEqual(expected);
  });

  it('contains every file that main, types and each exports entry point at', () => {
    const manifest = readManifest();
    const targets = [manifest.main, manifest.types, ...exportTargets(manifest.exports)];
    expect(exportTargets(manifest.exports)).toContain('./package.json');
    const missing = targets
      .map((target) => target.replace(/^\.\//, ''))
      .filter((target) => !files.includes(target));
    expect(missing).toEqual([]);
  });

  it('gives every entry point an ES module and a CommonJS build of the same file, each with its types', () => {
    const manifest = readManifest();
    const exportsMap = manifest.exports as Record<string, unknown>;
    const entries = Object.entries(exportsMap).filter(([subpath]) => subpath !== './package.json');
    for (const [subpath, target] of entries) {
      expect({ subpath, target }).toEqual({
        subpath,
        target: { import: expect.any(String), require: expect.any(String) },
      });
      const { import: esm, require: cjs } = target as { import: string; require: string };
      expect(esm).toMatch(/^\.\/dist\/esm\/.*\.js$/);
      expect(cjs).toBe(esm.replace('/dist/esm/', '/dist/cjs/'));
      // TypeScript finds the declarations beside each file, and reads them
      // as CommonJS under dist/cjs (its package.json says so).
      for (const file of [esm, cjs]) {
        expect(files).toContain(file.replace(/^\.\//, '').replace(/\.js$/, '.d.ts'));
      }
    }
    const root = exportsMap['.'] as { require: string };
    expect(manifest.main).toBe(root.require);
    expect(manifest.types).toBe(root.require.replace(/\.js$/, '.d.ts'));
    expect(JSON.parse(readFileSync(join(repoRoot, 'dist/cjs/package.json'), 'utf8'))).toEqual({
      type: 'commonjs',
    });
    // TypeScript's node10 resolution (`module: commonjs`, as in many Nest
    // projects) ignores `exports`: typesVersions gives it each subpath's types.
    const subpaths = Object.fromEntries(
      entries
        .filter(([subpath]) => subpath !== '.')
        .map(([subpath, target]) => [
          subpath.slice('./'.length),
          [(target as { require: string }).require.replace(/\.js$/, '.d.ts')],
        ]),
    );
    expect(manifest.typesVersions).toEqual({ '*': subpaths });
  });

  it('imports, at run time and in its types, only Node built-ins and packages it declares', () => {
    const manifest = readManifest();
    const declared = new Set([
      ...Object.keys(manifest.dependencies),
      ...Object.keys(manifest.peerDependencies),
    ]);
    const undeclared = new Set<string>();
    for (const path of files.filter((file) => file.startsWith('dist/'))) {
      for (const specifier of specifiersIn(readFileSync(join(repoRoot, path), 'utf8'))) {
        if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
        if (builtinModules.includes(specifier)) continue;
        if (!declared.has(packageOf(specifier))) undeclared.add(`${path}: ${specifier}`);
      }
    }
    expect([...undeclared]).toEqual([]);
  });

  it('ships the MIT license that package.json names', () => {
    const manifest = readManifest();
    expect(manifest.license).toBe('MIT');
    const license = readFileSync(join(repoRoot, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} the nestjs-redis-tx authors\n/);
  });
});
