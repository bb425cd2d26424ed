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
  'RedisTxHttpException',
];

describe('the built package entry', () => {
  it('exports every documented name to an ESM importer', () => {
    // The package imports itself by name through its `exports` map, as an app would.
    const script = `
      const m = await import('nestjs-redis-tx');
      console.log(JSON.stringify(Object.keys(m).sort()));
      const errors = Object.values(m).filter((v) => typeof v === 'function' && v.prototype instanceof m.RedisTxError);
      console.log(errors.length);`;
    const [names, errorCount] = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    )
      .trim()
      .split('\n');
    expect(JSON.parse(names!)).toEqual([...documentedExports].sort());
    expect(Number(errorCount)).toBe(
      documentedExports.filter((n) => n.endsWith('Error')).length - 1,
    );
  });
});
