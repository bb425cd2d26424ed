/*
 * An HTTP application on NestJS 11 (CommonJS, as `nest new` makes it) that
 * uses the packed library, written out into a temp dir by nest11.spec.ts,
 * where NestJS 11 is installed from the registry. It runs two instances of
 * itself on one Redis and prints what their answers were, and which lines
 * Nest and the library logged at error level.
 */

export const nest11Source = `
import 'reflect-metadata';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BadRequestException,
  Body,
  Controller,
  Injectable,
  Module,
  ConsoleLogger,
  Param,
  Post,
  type INestApplication,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { Locked, RedisTx, RedisTxModule, Transactional } from 'nestjs-redis-tx';

const url = process.argv[2]!;
const racer = new Redis(url);

/** Keeps what would be logged at error level (Nest's exception handler included), and stays silent. */
const errorLines: string[] = [];
class Quiet extends ConsoleLogger {
  override error(message: unknown, ...rest: unknown[]): void {
    errorLines.push([message, ...rest].map(String).join(' '));
  }
  override fatal(message: unknown, ...rest: unknown[]): void {
    errorLines.push([message, ...rest].map(String).join(' '));
  }
  override log(): void {}
  override warn(): void {}
  override debug(): void {}
  override verbose(): void {}
}

interface Transfer {
  from: string;
  to: string;
  amount: number;
}

// The job handler holds its lock until the driver has asked the other instance.
let signalEntered: () => void = () => undefined;
const entered = new Promise<void>((resolve) => (signalEntered = resolve));
let openGate: () => void = () => undefined;
const gate = new Promise<void>((resolve) => (openGate = resolve));

@Injectable()
class Accounts {
  constructor(private readonly redis: RedisTx) {}

  // A WATCH transaction that always loses to a write of its own: a conflict on every attempt.
  @Transactional({ watch: ['contended'], retries: 0 })
  async bump(): Promise<void> {
    await this.redis.client.get('contended');
    await racer.incr('contended');
    this.redis.multi.incr('contended');
  }

  @Transactional({ watch: (from: string, to: string) => [\`acct:\${from}\`, \`acct:\${to}\`], retries: 100 })
  async transfer(from: string, to: string, amount: number): Promise<void> {
    const [balance] = await this.redis.client.mget(\`acct:\${from}\`);
    if (Number(balance) < amount) throw new BadRequestException(\`\${from} has too little\`);
    this.redis.multi.decrby(\`acct:\${from}\`, amount).incrby(\`acct:\${to}\`, amount);
  }
}

@Controller()
class BankController {
  constructor(private readonly accounts: Accounts) {}

  @Post('transfers')
  async transfer(@Body() body: Transfer): Promise<{ done: boolean }> {
    await this.accounts.transfer(body.from, body.to, body.amount);
    return { done: true };
  }

  @Post('bump')
  async bump(): Promise<{ done: boolean }> {
    await this.accounts.bump();
    return { done: true };
  }

  @Post('jobs/:id')
  @Locked((id: string) => \`job:\${id}\`, { waitMs: 0 })
  async job(@Param('id') id: string): Promise<{ id: string }> {
    signalEntered();
    await gate;
    return { id };
  }
}

@Module({
  imports: [RedisTxModule.forRoot({ connection: url })],
  providers: [Accounts],
  controllers: [BankController],
})
class AppModule {}

interface Answer {
  status: number;
  body: unknown;
}

/** POSTs JSON on a fresh connection, so nothing is kept alive after the apps close. */
function send(port: number, path: string, body: unknown = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on('error', reject);
    req.setHeader('content-type', 'application/json');
    req.end(JSON.stringify(body));
  });
}

async function boot(): Promise<{ app: INestApplication; port: number }> {
  const app = await NestFactory.create(AppModule, { logger: new Quiet() });
  await app.listen(0, '127.0.0.1');
  return { app, port: (app.getHttpServer().address() as AddressInfo).port };
}

const post = (port: number, path: string, body?: unknown) =>
  send(port, path, body).then((answer) => answer.status);

async function main(): Promise<void> {
  const one = await boot();
  const two = await boot();
  try {
    const transfers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        post(i % 2 ? one.port : two.port, '/transfers', { from: 'alice', to: 'bob', amount: 1 }),
      ),
    );
    const holding = post(one.port, '/jobs/7');
    await entered;
    const whileHeld = await send(two.port, '/jobs/7');
    openGate();
    const holder = await holding;
    const afterRelease = await post(two.port, '/jobs/7');
    const conflict = await send(one.port, '/bump');
    const report = { transfers: transfers.sort(), whileHeld, holder, afterRelease, conflict, errorLines };
    console.log('nest11 ' + JSON.stringify(report));
  } finally {
    await one.app.close();
    await two.app.close();
    await racer.quit();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
`;

/**
 * A spec as `nest new` lays one out, run by the project's Jest through
 * ts-jest in CommonJS with the generated configuration and nothing added.
 * It imports the package by name, which has to resolve to the CommonJS
 * build: Jest's own require() cannot load an ES module.
 */
export const nest11SpecSource = `
import { Injectable } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import {
  LockNotAcquiredError,
  LockService,
  RedisTx,
  RedisTxError,
  RedisTxModule,
  Transactional,
} from 'nestjs-redis-tx';
import type { RedisTxHealthOptions } from 'nestjs-redis-tx/terminus';

@Injectable()
class Wallet {
  constructor(private readonly redis: RedisTx) {}

  @Transactional({ watch: (id: string) => [\`jest:wallet:\${id}\`] })
  async topUp(id: string, amount: number): Promise<number> {
    const balance = Number(await this.redis.client.get(\`jest:wallet:\${id}\`));
    this.redis.multi.set(\`jest:wallet:\${id}\`, String(balance + amount));
    return balance + amount;
  }
}

describe('RedisTxModule', () => {
  let moduleRef: TestingModule;

  beforeAll(async () => {
    moduleRef = await Test.createTestingModule({
      imports: [RedisTxModule.forRoot({ connection: process.env.REDIS_URL! })],
      providers: [Wallet],
    }).compile();
    await moduleRef.init();
  });

  afterAll(() => moduleRef.close());

  it('is the CommonJS build, with types for its subpaths too', () => {
    expect(require.resolve('nestjs-redis-tx')).toMatch(/dist[\\\\/]cjs[\\\\/]index\\.js$/);
    const health: RedisTxHealthOptions = { timeoutMs: 500 };
    expect(health.timeoutMs).toBe(500);
  });

  it('runs WATCH transactions and refuses a busy lock', async () => {
    const wallet = moduleRef.get(Wallet);
    expect(await wallet.topUp('a', 5)).toBe(5);
    expect(await wallet.topUp('a', 2)).toBe(7);
    const locks = moduleRef.get(LockService);
    const lock = await locks.acquire('jest:lock', { ttlMs: 5_000 });
    const refused = await locks.acquire('jest:lock', { waitMs: 0 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(LockNotAcquiredError);
    expect(refused).toBeInstanceOf(RedisTxError);
    expect(await lock.release()).toBe(true);
  });
});
`;

/** What \`nest new\` writes for Jest, in package.json. */
export const nest11JestConfig = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: 'src',
  testRegex: '.*\\.spec\\.ts$',
  transform: { '^.+\\.(t|j)s$': 'ts-jest' },
  collectCoverageFrom: ['**/*.(t|j)s'],
  coverageDirectory: '../coverage',
  testEnvironment: 'node',
};

/** A tsconfig.json in the shape \`nest new\` gives a CommonJS project. */
export const nest11Tsconfig = {
  compilerOptions: {
    module: 'commonjs',
    declaration: true,
    removeComments: true,
    emitDecoratorMetadata: true,
    experimentalDecorators: true,
    allowSyntheticDefaultImports: true,
    target: 'ES2023',
    sourceMap: true,
    outDir: './dist',
    skipLibCheck: true,
    strictNullChecks: true,
    forceConsistentCasingInFileNames: true,
    noImplicitAny: false,
    strictBindCallApply: false,
    noFallthroughCasesInSwitch: false,
  },
};

/** And the tsconfig.build.json beside it, which `nest build` compiles: the specs left out. */
export const nest11BuildTsconfig = {
  extends: './tsconfig.json',
  exclude: ['node_modules', 'test', 'dist', '**/*spec.ts'],
};
