/*
 * Scripts written out into temp dirs by consumers.spec.ts, where the packed
 * library is installed by name; kept as text for the same reason as
 * consumer-app.ts.
 */

/**
 * CommonJS that loads both builds of the package into one process: the
 * CommonJS one through require() and the ES module one through import().
 * A service decorated through the ES module build runs in an application
 * whose module comes from the CommonJS build, and errors of either build
 * are told apart by instanceof with the other's classes. Plain JavaScript
 * with Reflect.decorate, which is what compiled decorators call.
 */
export const dualLoadSource = `
'use strict';
require('reflect-metadata');
const { subscribe } = require('node:diagnostics_channel');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const cjs = require('nestjs-redis-tx');

const url = process.argv[2];

function decorateMethod(decorators, prototype, name) {
  const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
  Object.defineProperty(prototype, name, Reflect.decorate(decorators, prototype, name, descriptor));
}

async function main() {
  const esm = await import('nestjs-redis-tx');
  const commits = [];
  subscribe(cjs.channelNames.transactionCommit, (event) => commits.push(event.commands));

  class Ledger {
    constructor(redis) {
      this.redis = redis;
    }
    async post(entry) {
      this.redis.multi.rpush('dual:ledger', entry);
      await this.count();
      return this.redis.active;
    }
    async count() {
      this.redis.multi.incr('dual:count');
    }
  }
  // post() is decorated through the ES module build, count() through the CommonJS one.
  decorateMethod([esm.Locked('dual:ledger', { waitMs: 0 }), esm.Transactional()], Ledger.prototype, 'post');
  decorateMethod([cjs.Transactional()], Ledger.prototype, 'count');
  Reflect.decorate([Injectable(), Reflect.metadata('design:paramtypes', [cjs.RedisTx])], Ledger);

  class AppModule {}
  Reflect.decorate(
    [Module({ imports: [cjs.RedisTxModule.forRoot({ connection: url })], providers: [Ledger] })],
    AppModule,
  );

  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  try {
    const ledger = app.get(Ledger);
    const locks = app.get(cjs.LockService);
    const active = await ledger.post('first');
    const held = await locks.acquire('dual:ledger', { ttlMs: 5000 });
    const refused = await ledger.post('second').then(
      () => 'ran',
      (error) => ({
        reason: error.reason,
        esmClass: error instanceof esm.LockNotAcquiredError,
        cjsClass: error instanceof cjs.LockNotAcquiredError,
        esmBase: error instanceof esm.RedisTxError,
        otherEsmClass: error instanceof esm.LockLostError,
      }),
    );
    await held.release();
    await ledger.post('third');

    // Every pair of error classes answers instanceof across the builds as within one.
    const names = Object.keys(cjs).filter((name) => name.endsWith('Error'));
    const mismatches = [];
    let matches = 0;
    for (const made of names) {
      for (const tested of names) {
        const expected = Object.create(cjs[made].prototype) instanceof cjs[tested];
        for (const [from, to] of [[esm, cjs], [cjs, esm]]) {
          const actual = Object.create(from[made].prototype) instanceof to[tested];
          if (actual !== expected) mismatches.push(made + ' instanceof ' + tested);
          if (actual) matches++;
        }
      }
    }
    const lookalike = Object.create({ constructor: function RedisTxError() {} });

    const report = {
      twoCopies: cjs.RedisTxModule !== esm.RedisTxModule && cjs.RedisTxError !== esm.RedisTxError,
      required: require.resolve('nestjs-redis-tx').split(require('node:path').sep).slice(-3).join('/'),
      active,
      refused,
      commits,
      errorClasses: names.length,
      matches,
      mismatches,
      plainError: new Error('x') instanceof esm.RedisTxError,
      lookalike: lookalike instanceof esm.RedisTxError,
    };
    console.log('dual ' + JSON.stringify(report));
  } finally {
    await app.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;

/**
 * A spec of a NestJS 12 application, which is an ES module project: it is
 * compiled with the app's tsc and run with Node's own test runner, which
 * needs no transform and no configuration. It boots RedisTxModule in a
 * testing module and serves HTTP from it.
 */
export const esmSpecSource = `
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { Controller, Get, Injectable, Param, Post, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Locked, RedisTx, RedisTxModule, Transactional } from 'nestjs-redis-tx';

@Injectable()
class Counters {
  constructor(private readonly redis: RedisTx) {}

  @Transactional({ watch: (name: string) => [\`esm:\${name}\`] })
  async add(name: string): Promise<number> {
    const seen = Number(await this.redis.client.get(\`esm:\${name}\`));
    this.redis.multi.set(\`esm:\${name}\`, String(seen + 1));
    return seen + 1;
  }

  read(name: string): Promise<string | null> {
    return this.redis.client.get(\`esm:\${name}\`);
  }
}

@Controller('counters')
class CountersController {
  constructor(private readonly counters: Counters) {}

  @Post(':name')
  @Locked((name: string) => \`esm:\${name}\`, { waitMs: 2_000 })
  async add(@Param('name') name: string): Promise<{ value: number }> {
    return { value: await this.counters.add(name) };
  }

  @Get(':name')
  async read(@Param('name') name: string): Promise<{ value: string | null }> {
    return { value: await this.counters.read(name) };
  }
}

/** One request on a fresh connection, so nothing is kept alive after the app closes. */
function call(port: number, method: string, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

let app: INestApplication;
let port: number;

before(async () => {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxModule.forRoot({ connection: process.env['REDIS_URL']! })],
    controllers: [CountersController],
    providers: [Counters],
  }).compile();
  app = moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  port = (app.getHttpServer().address() as { port: number }).port;
});

after(() => app.close());

test('loads the ES module build', () => {
  assert.match(import.meta.resolve('nestjs-redis-tx'), /\\/dist\\/esm\\/index\\.js$/);
});

test('counts over HTTP under a lock and in WATCH transactions', async () => {
  const answers = await Promise.all([1, 2, 3].map(() => call(port, 'POST', '/counters/visits')));
  assert.deepEqual(answers.map((a) => a.status), [201, 201, 201]);
  assert.deepEqual(
    answers.map((a) => (a.body as { value: number }).value).sort(),
    [1, 2, 3],
  );
  assert.deepEqual(await call(port, 'GET', '/counters/visits'), { status: 200, body: { value: '3' } });
});
`;
