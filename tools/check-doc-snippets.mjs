// Type-checks every ```ts block of README.md and docs/*.md under `strict`,
// against the library's sources, so that an example cannot drift from the API.
//
//   node tools/check-doc-snippets.mjs
//
// Each block becomes a module of its own in .tmp/doc-snippets/<document>/.
// The info string after `ts` says how:
//
//   ```ts                  a whole module: it imports what it uses
//   ```ts file=main.ts     a whole module saved under that name, so that the
//                          blocks of one document can import each other
//                          (`import { AppModule } from './app.module.js'`)
//   ```ts snippet=members  class members (methods with their decorators):
//                          wrapped in an @Injectable() class that has
//                          `this.redis` (RedisTx) and `this.locks` (LockService)
//
// The imports 'nestjs-redis-tx' and 'nestjs-redis-tx/terminus' resolve to
// lib/ through path mapping, so no build is needed. Prints the errors with
// the Markdown file and line they come from, and exits with 1 if there are any.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, '.tmp', 'doc-snippets');

/** The package's entry points, by import specifier: one line per entry point. */
const entryPoints = {
  'nestjs-redis-tx': 'lib/index.ts',
  'nestjs-redis-tx/otel': 'lib/otel/index.ts',
  'nestjs-redis-tx/terminus': 'lib/terminus/index.ts',
  'nestjs-redis-tx/testing': 'lib/testing/index.ts',
};

// The names that `snippet=members` blocks use without importing them.
const membersHeader = `import { Injectable, Logger } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import {
  Locked,
  LockLostError,
  LockNotAcquiredError,
  LockService,
  RedisTx,
  Transactional,
  TransactionConflictError,
} from 'nestjs-redis-tx';
import { InsufficientFunds, type Order, type User } from '../prelude.js';

@Injectable()
export class Snippet {
  declare readonly redis: RedisTx;
  declare readonly locks: LockService;
`;

// What the examples' own domain (an error, two records) stands for.
const prelude = `export class InsufficientFunds extends Error {}
export interface Order {
  id: string;
  total: number;
}
export interface User {
  id: string;
  name: string;
}
`;

function documents() {
  const docs = readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

/** The ```ts blocks of a Markdown file: their code, info string and first code line. */
function blocksOf(path) {
  const lines = readFileSync(join(root, path), 'utf8').split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```ts(?:\s+(.*))?$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== '```') end++;
    const attributes = Object.fromEntries(
      (open[1] ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((pair) => pair.split('=')),
    );
    blocks.push({ code: lines.slice(start, end).join('\n'), attributes, line: start + 1 });
    i = end;
  }
  return blocks;
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'prelude.ts'), prelude);

/** Generated file (relative to `out`) → where its lines come from. */
const sources = new Map();
let count = 0;
for (const doc of documents()) {
  const dir = join(out, doc.replace(/\.md$/, '').replace(/\//g, '-'));
  mkdirSync(dir, { recursive: true });
  for (const { code, attributes, line } of blocksOf(doc)) {
    const unknown = Object.keys(attributes).filter((key) => key !== 'file' && key !== 'snippet');
    if (unknown.length > 0 || (attributes.snippet && attributes.snippet !== 'members')) {
      console.error(`${doc}:${line - 1}: unknown code block attribute in \`\`\`ts ${unknown}`);
      process.exit(1);
    }
    const name = attributes.file ?? `line-${line}.ts`;
    const members = attributes.snippet === 'members';
    const header = members ? membersHeader : '';
    const footer = members ? '\n}\n' : '\nexport {};\n';
    writeFileSync(join(dir, name), `${header}${code}${footer}`);
    sources.set(relative(out, join(dir, name)), {
      doc,
      line,
      offset: header.split('\n').length - 1,
    });
    count++;
  }
}

const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2023'],
        // Guides on testing show Jest specs.
        types: ['node', 'jest'],
        strict: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        useDefineForClassFields: false,
        skipLibCheck: true,
        noEmit: true,
        paths: Object.fromEntries(
          Object.entries(entryPoints).map(([specifier, path]) => [
            specifier,
            [relative(out, join(root, path))],
          ]),
        ),
      },
      // The library's own declarations for untyped dependencies.
      include: ['**/*.ts', relative(out, join(root, 'lib/types'))],
    },
    null,
    2,
  ),
);

let output = '';
try {
  execFileSync(process.execPath, [tsc, '-p', join(out, 'tsconfig.json'), '--pretty', 'false'], {
    cwd: out,
    encoding: 'utf8',
  });
} catch (error) {
  output = `${error.stdout ?? ''}${error.stderr ?? ''}`;
}

// "docs-locks/line-12.ts(3,5): error TS…" → "docs/locks.md:14:5: error TS…"
const errors = output
  .split('\n')
  .filter(Boolean)
  .map((message) => {
    const at = /^(.*?)\((\d+),(\d+)\): (.*)$/.exec(message);
    const source = at && sources.get(at[1]);
    if (!source) return message;
    const line = source.line + Number(at[2]) - 1 - source.offset;
    return `${source.doc}:${line}:${at[3]}: ${at[4]}`;
  });
if (errors.length > 0) {
  console.error(errors.join('\n'));
  console.error(
    `doc snippets: ${count} blocks checked, errors above (generated in .tmp/doc-snippets)`,
  );
  process.exit(1);
}
console.log(`doc snippets: ${count} TypeScript blocks type-check under strict`);
