import { execFileSync } from 'node:child_process';
import { importWithout } from './support/import-without.js';

/** Every public name of the contract, as a user's `import … from 'nestjs-redis-tx'` sees it. */
const documentedExports = [
  'RedisTxModule',
  'REDIS_CLIENT',
  'InjectRedis',
  'RedisTx',
  'Transactional',
  'LockService',
  'Locked',
  'OncePerTick',
  'CronTicksModule',
  'CronTicks',
  'channelNames',
  'tracingChannelNames',
  'RedisTxError',
  'TransactionAbortedError',
  'TransactionCrossSlotError',
  'TransactionExecError',
  'TransactionConflictError',
  'TransactionOutcomeUnknownError',
  'NoActiveTransactionError',
  'TransactionPropagationError',
  'QueuedCommandAwaitedError',
  'InvalidOptionsError',
  'UnboundInstanceError',
  'LockNotAcquiredError',
  'LockLostError',
  'InvalidLockKeyError',
  'RedisPermissionError',
  'ShuttingDownError',
  'ConnectionLostError',
  'InvalidCronJobError',
  'RedisTxHttpException',
];

describe('the built package entry', () => {
  // The package loads itself by name through its `exports` map, as an app would.
  it.each([
    [
      'an ES module importer',
      ['--input-type=module'],
      `const m = await import('nestjs-redis-tx');`,
    ],
    ['a CommonJS require()', ['--input-type=commonjs'], `const m = require('nestjs-redis-tx');`],
  ])('exports every documented name to %s', (_label, flags, load) => {
    const script = `${load}
      console.log(JSON.stringify(Object.keys(m).sort()));
      const errors = Object.values(m).filter((v) => typeof v === 'function' && v.prototype instanceof m.RedisTxError);
      console.log(errors.length);`;
    const [names, errorCount] = execFileSync(process.execPath, [...flags, '-e', script], {
      encoding: 'utf8',
    })
      .trim()
      .split('\n');
    expect(JSON.parse(names!)).toEqual([...documentedExports].sort());
    expect(Number(errorCount)).toBe(
      documentedExports.filter((n) => n.endsWith('Error')).length - 1,
    );
  });
});

describe('the built nestjs-redis-tx/otel entry', () => {
  it('nestjs-redis-tx loads without @opentelemetry/api; nestjs-redis-tx/otel is where it is needed', () => {
    expect(importWithout('nestjs-redis-tx', '@opentelemetry/api')).toBe('loaded');
    expect(importWithout('nestjs-redis-tx/otel', '@opentelemetry/api')).toBe(
      '@opentelemetry/api was loaded',
    );
  });

  it('a CommonJS require() of nestjs-redis-tx loads nothing of OpenTelemetry', () => {
    const script = `require('nestjs-redis-tx');
      console.log(Object.keys(require.cache).filter((path) => path.includes('@opentelemetry')).length);`;
    const loaded = execFileSync(process.execPath, ['--input-type=commonjs', '-e', script], {
      encoding: 'utf8',
    }).trim();
    expect(loaded).toBe('0');
  });

  it.each([
    [
      'an ES module importer',
      ['--input-type=module'],
      `const m = await import('nestjs-redis-tx/otel');`,
    ],
    [
      'a CommonJS require()',
      ['--input-type=commonjs'],
      `const m = require('nestjs-redis-tx/otel');`,
    ],
  ])('exports the instrumentation, its module and its names to %s', (_label, flags, load) => {
    const names = execFileSync(
      process.execPath,
      [...flags, '-e', `${load} console.log(Object.keys(m).sort().join());`],
      { encoding: 'utf8' },
    ).trim();
    expect(names).toBe(
      'RedisTxOtelModule,attributeNames,metricNames,registerRedisTxInstrumentation',
    );
  });
});
