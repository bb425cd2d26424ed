// Every message a user can read from this library, built in one place so the
// wording stays consistent and each one says what to do next.

export const messages = {
  optionRequired: (option: string, expected: string) =>
    `RedisTxModule: option \`${option}\` is required: ${expected}.`,
  optionInvalid: (option: string, expected: string, got: unknown, where = 'RedisTxModule') =>
    `${where}: option \`${option}\` must be ${expected}; got ${describe(got)}.`,
  connectionExpected:
    'a redis:// or rediss:// URL, ioredis RedisOptions (Sentinel included), { cluster: [{ host, port }, …], options? }, or an ioredis Redis or Cluster instance',

  noActiveTransaction: (what: string) =>
    `${what} needs an active transaction: call it inside a @Transactional() method or RedisTx.run(), or use RedisTx.client to run commands immediately.`,
  transactionEnded: (what: string) =>
    `${what} was used after its transaction's method had returned (from a callback that outlived it): the command would never be sent. Await that work inside the method.`,
  mandatoryWithoutTransaction: (label: string) =>
    `${label} has propagation 'mandatory' but no transaction is active: call it from inside a @Transactional() method or RedisTx.run().`,
  neverInsideTransaction: (label: string) =>
    `${label} has propagation 'never' but runs inside a transaction: call it outside, or change its propagation.`,
  watchCannotJoin: (label: string) =>
    `${label} asks to WATCH keys but would join a transaction that has no WATCH connection: put \`watch\` on the outermost transactional method, or use propagation 'requires_new'.`,
  queuedCommandAwaited: (command: string) =>
    `RedisTx.multi.${command}(…) was awaited: queued commands have no reply until EXEC, which runs when the outermost transactional method returns. Do not await them; read replies from RedisTx.run()'s result or an afterCommit hook, or use RedisTx.client for an immediate reply.`,
  execCalledByUser:
    'RedisTx.multi.exec() must not be called: EXEC is sent when the outermost transactional method returns (or DISCARDed when it throws).',

  execAborted: (label: string, causes: readonly Error[]) =>
    `${label}: Redis rejected the transaction before running it (EXECABORT); nothing was applied.${causes.length ? ` Rejected: ${causes.map((c) => c.message).join('; ')}.` : ''} Fix the queued command and try again.`,
  notSent: (label: string, reason: string) =>
    `${label}: the transaction was not sent, so nothing was applied: ${reason}.`,
  execFailed: (label: string, failed: number, total: number, firstError: string) =>
    `${label}: ${failed} of ${total} queued commands failed inside EXEC (first: ${firstError}). Redis has no rollback: the other ${total - failed} commands WERE applied. The error's \`replies\` holds every command's result or error.`,
  conflict: (label: string, attempts: number) =>
    `${label}: a watched key changed on each of ${attempts} attempt(s), so nothing was applied. Retry later, raise \`retries\`, or reduce contention on the watched keys.`,
  outcomeUnknown: (label: string) =>
    `${label}: the connection to Redis failed after EXEC was sent and before its reply; Redis may or may not have applied the transaction. It was not retried: check the data before trying again.`,

  unboundInstance: (label: string) =>
    `${label} ran on an object that RedisTxModule has not seen: create the class through Nest dependency injection (a provider or controller, not request-scoped) in an application that imports RedisTxModule.`,
  requestScoped: (className: string) =>
    `${className} is request-scoped or transient: its @Transactional and @Locked methods cannot be bound and will throw UnboundInstanceError. Move them to a singleton provider.`,
  invalidLockKey: (label: string, key: unknown, why: string) =>
    `${label}: lock key ${describe(key)} ${why}. Return a non-empty string (or an array of them) built from the method's arguments, e.g. \`order:\${id}\`.`,
  lockBusy: (keys: readonly string[], waitMs: number) =>
    `Lock ${keys.map((k) => `"${k}"`).join(', ')} is held elsewhere${waitMs > 0 ? ` and was not released within ${waitMs} ms` : ''}. Try again later, or raise \`waitMs\`.`,
  lockWaitAborted: (keys: readonly string[]) =>
    `Waiting for lock ${keys.map((k) => `"${k}"`).join(', ')} was cancelled by its AbortSignal.`,
  lockAcquireUnknown: (key: string) =>
    `The connection to Redis failed while acquiring lock "${key}"; whatever was taken is being released. Try again.`,
  lockConnectionFailed: (key: string) =>
    `The connection to Redis failed while working on lock "${key}"; the outcome of that command is unknown. A lease that cannot be renewed ends by itself.`,
  lockLost: (key: string, why: string) =>
    `Lock "${key}" was lost: ${why}. Another holder may be running now; stop the work, and use the fencing token where a stale write must be refused.`,
  lockUpgrade: (key: string) =>
    `Lock "${key}" is held for reading in this call chain and cannot be upgraded to writing: take it for writing from the start.`,
  lockShuttingDown: 'RedisTxModule is shutting down: no new lock can be acquired.',
  watchPoolClosed:
    'RedisTxModule is shutting down: no new WATCH transaction can start, and nothing was sent.',
  moduleClosed:
    'RedisTxModule has shut down (app.close()): its connections are closed, and no transaction or lock can run on it any more.',
  hookFailed: (kind: string, label: string) =>
    `${kind} hook of ${label} failed; the transaction outcome stands.`,
} as const;

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  return value.constructor?.name ?? 'object';
}
