/*
 * A tiny application that depends on the packed library the way a user's
 * does, written out into a temp dir by the packaging tests. It is kept as
 * text because it imports 'nestjs-redis-tx' by name from its own
 * node_modules, which only exists in that temp dir.
 */

/** The TypeScript a consumer compiles; the same source serves as ESM and as CommonJS. */
export const consumerSource = `
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  LockNotAcquiredError,
  LockService,
  Locked,
  RedisTx,
  RedisTxModule,
  Transactional,
  type Lock,
  type LockOptions,
  type TransactionResult,
} from 'nestjs-redis-tx';

const [, , url, name] = process.argv as [string, string, string, string];

@Injectable()
class Visits {
  constructor(private readonly redis: RedisTx) {}

  @Locked((page: string) => \`\${name}:page:\${page}\`, { ttlMs: 5_000, waitMs: 2_000 })
  @Transactional({ watch: (page: string) => [\`\${name}:visits:\${page}\`] })
  async count(page: string): Promise<number> {
    const seen = Number(await this.redis.client.get(\`\${name}:visits:\${page}\`));
    this.redis.multi.set(\`\${name}:visits:\${page}\`, String(seen + 1));
    return seen + 1;
  }
}

@Module({ imports: [RedisTxModule.forRoot({ connection: url })], providers: [Visits] })
class AppModule {}

/** Never called: it fails to compile unless the package's types are real (not any). */
export function typesAreChecked(locks: LockService): void {
  // @ts-expect-error ttlMs is a number
  const wrong: LockOptions = { ttlMs: 'ten seconds' };
  // @ts-expect-error a lock key is a string or a list of strings
  void locks.acquire(42);
  // @ts-expect-error the module has no such option
  RedisTxModule.forRoot({ connection: url, conection: url });
  void wrong;
}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  try {
    const locks = app.get(LockService);
    const redis = app.get(RedisTx);
    const lock: Lock = await locks.acquire(\`\${name}:lock\`, { ttlMs: 5_000, waitMs: 1_000 });
    const busy = await locks
      .acquire(\`\${name}:lock\`, { waitMs: 0 })
      .then(() => false, (error: unknown) => error instanceof LockNotAcquiredError);
    const released = await lock.release();
    const stillLocked = await locks.isLocked(\`\${name}:lock\`);
    const tx: TransactionResult<string> = await redis.run(() => {
      redis.multi.set(\`\${name}:tx\`, 'applied').get(\`\${name}:tx\`);
      return 'queued';
    });
    const visits = app.get(Visits);
    const counted = [await visits.count('home'), await visits.count('home')];
    const report = {
      fencingToken: lock.fencingToken,
      busy,
      released,
      stillLocked,
      tx: { value: tx.value, replies: tx.replies },
      counted,
    };
    console.log('consumer ' + JSON.stringify(report));
  } finally {
    await app.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
`;

/** A consumer's tsconfig: what \`nest new\` and the TypeScript handbook suggest for Node. */
export const consumerTsconfig = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    // Checks the package's declaration files too, so a type that fails to resolve shows.
    skipLibCheck: false,
    types: ['node'],
    rootDir: 'src',
    outDir: 'dist',
  },
  include: ['src'],
};
