import { execFileSync } from 'node:child_process';

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
