// Every message a user can read from this library, built in one place so the
// wording stays consistent and each one says what to do next.

export const messages = {
  optionRequired: (option: string, expected: string) =>
    `RedisTxModule: option \`${option}\` is required: ${expected}.`,
  optionInvalid: (option: string, expected: string, got: unknown, where = 'RedisTxModule') =>
    `${where}: option \`${option}\` must be ${expected}; got ${describe(got)}.`,
  optionUnknown: (
    where: string,
    option: string,
    help: { hint?: string; closest?: string; known: readonly string[] },
  ) =>
    `${where}: unknown option \`${option}\`; ${
      help.hint ??
      (help.closest
        ? `did you mean \`${help.closest}\`?`
        : `the options here are ${help.known.map((k) => `\`${k}\``).join(', ')}.`)
    } An option the library does not know would be ignored, so it is refused.`,
  optionInFactoryResult:
    'give `isGlobal` to RedisTxModule.forRootAsync() itself: the module is registered before the factory runs',
  optionNotForTryAcquire:
    'tryAcquire() never waits; use acquire() with `waitMs` to wait for a busy lock',
  optionNotForLocked:
    '@Locked() has no call to cancel; use LockService.acquire() or using() with `signal`',
  optionsNotObject: (where: string, got: unknown) =>
    `${where}: the options must be an object; got ${describe(got)}.`,
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
  watchRefused: (label: string, redisSays: string) =>
    `${label}: Redis refused the WATCH (${redisSays}), so the method did not run and nothing was applied; it was not retried. If the Redis user lacks permission, grant it the watched keys.`,
  notSent: (label: string, reason: string) =>
    `${label}: the transaction was not sent, so nothing was applied: ${reason}.`,
  execFailed: (label: string, failed: number, total: number, firstError: string) =>
    `${label}: ${failed} of ${total} queued commands failed inside EXEC (first: ${firstError}). Redis has no rollback: the other ${total - failed} commands WERE applied. The error's \`replies\` holds every command's result or error.`,
  conflict: (label: string, attempts: number) =>
    `${label}: a watched key changed on each of ${attempts} attempt(s), so nothing was applied. Retry later, raise \`retries\`, or reduce contention on the watched keys.`,
  conflictLostWatch: (label: string, attempts: number, why: string) =>
    `${label}: none of ${attempts} attempt(s) was applied, and the last one failed not because a watched key changed but because its WATCH was lost: the node holding it stopped serving the slot or its connection dropped (${why}), as happens during a failover, a slot move or while a node does not answer. Retry once the slot has a master again, or raise \`retries\` and \`transactions.backoff\` to ride out failovers.`,
  watchConnectionDropped: 'the connection holding the WATCH dropped before EXEC',
  crossSlot: (label: string, keys: readonly { key: string; slot: number }[]) =>
    `${label}: on Redis Cluster a transaction's keys must all live in one hash slot, but ${keys.map((k) => `"${k.key}" is in slot ${k.slot}`).join(', ')}. Nothing was sent. Give the keys a common hash tag, e.g. "{user:42}:balance" and "{user:42}:history": only the part inside { } decides the slot.`,
  clusterRefusedExec: (label: string, reply: string) =>
    `${label}: a Redis Cluster node refused the transaction (${reply}), so Redis discarded it and nothing was applied. Its slot moved or the cluster was failing over; try again.`,
  connectionLost: (command: string, reason: string, deadlineMs: number) =>
    reason === 'silent'
      ? `Redis sent no reply to ${command.toUpperCase()} for ${deadlineMs} ms (\`commandTimeoutMs\`), so its connection was dropped; whether the command was applied is unknown.`
      : reason === 'unreachable'
        ? `${command.toUpperCase()} waited ${deadlineMs} ms (\`commandTimeoutMs\`) for a connection to Redis and was never sent.`
        : `The connection to Redis closed before it answered ${command.toUpperCase()}; whether the command was applied is unknown.`,
  connectionDown: (who: string, node: string, error: string) =>
    `${who} to ${node} failed: ${error}. Further failures of ${node} are not logged until a connection to it is ready again.`,
  connectionSilent: (node: string, commandTimeoutMs: number) =>
    `Redis node ${node} sent no reply for ${commandTimeoutMs} ms (\`commandTimeoutMs\`), so its connections were dropped and, on a Cluster, the slot map refreshed. Further failures of ${node} are not logged until a connection to it is ready again.`,
  connectionRecovered: (who: string, node: string) => `${who} to ${node} recovered.`,
  unreachableWithin: (timeoutMs: number, lastError: string | undefined) =>
    `Redis was not reachable within ${timeoutMs} ms (\`transactions.readyTimeoutMs\`)${lastError ? `; the last connection error was: ${lastError}` : ''}`,
  connectionEnded: (lastError: string | undefined) =>
    `its connection closed for good${lastError ? ` (last error: ${lastError})` : ''}`,
  shuttingDown: (label: string) =>
    `${label}: the application is shutting down, so the transaction was not started and nothing was sent.`,
  outcomeUnknown: (label: string) =>
    `${label}: the connection to Redis failed after EXEC was sent and before its reply; Redis may or may not have applied the transaction. It was not retried: check the data before trying again.`,

  unboundInstance: (label: string) =>
    `${label} ran on an object that RedisTxModule has not seen: create the class through Nest dependency injection (a provider or controller, not request-scoped) in an application that imports RedisTxModule.`,
  requestScoped: (className: string) =>
    `${className} is request-scoped or transient: its @Transactional and @Locked methods cannot be bound and will throw UnboundInstanceError. Move them to a singleton provider.`,
  cronTickNoCron: (label: string) =>
    `${label}: the method has no @Cron(), so it has no schedule to claim ticks of. Put @Cron(expression, { name }) on it, or give the expression as the \`cron\` option.`,
  cronTickNoName: (label: string) =>
    `${label}: the job has no name, and ticks are claimed by job name. Name it with @Cron(expression, { name: 'my-job' }) or the \`job\` option.`,
  cronTickBadExpression: (label: string, expression: unknown, why: string) =>
    `${label}: cron expression ${describe(expression)} cannot be used: ${why}. Give a recurring expression such as '*/5 * * * *' (five fields, or six with seconds first).`,
  cronTickCronMissing: (label: string) =>
    `${label}: the \`cron\` package could not be loaded. It comes with @nestjs/schedule; install it (\`npm install @nestjs/schedule\`), or add \`cron\` to the application's dependencies where the package manager does not hoist it.`,
  cronTicksNotImported: (label: string) =>
    `${label} ran on an object that CronTicksModule has not seen: import CronTicksModule.forRoot() beside RedisTxModule, and create the class through Nest dependency injection (a singleton provider).`,
  cronTickUnreachable: (job: string, why: string) =>
    `Cron job "${job}": Redis could not be asked which tick was claimed last (${why}); this firing did not run and claimed nothing.`,
  cronTickClaimUnknown: (job: string) =>
    `Cron job "${job}": the connection to Redis failed after the tick's claim was sent and before its reply; the tick was not run here, and may have been claimed all the same, in which case it is missed.`,
  invalidLockKey: (label: string, key: unknown, why: string) =>
    `${label}: lock key ${describe(key)} ${why}. Return a non-empty string (or an array of them) built from the method's arguments, e.g. \`order:\${id}\`.`,
  lockBusy: (keys: readonly string[], waitMs: number) =>
    `Lock ${keys.map((k) => `"${k}"`).join(', ')} is held elsewhere${waitMs > 0 ? ` and was not released within ${waitMs} ms` : ''}. Try again later, or raise \`waitMs\`.`,
  lockWaitAborted: (keys: readonly string[]) =>
    `Waiting for lock ${keys.map((k) => `"${k}"`).join(', ')} was cancelled by its AbortSignal.`,
  lockAcquireUnknown: (key: string, cause?: unknown) =>
    `The connection to Redis failed while acquiring lock "${key}"${cause instanceof Error ? ` (${cause.message})` : ''}; whatever was taken is being released. Try again.`,
  lockRefusedForFailover: (keys: readonly string[], redisSays: string) =>
    `Lock ${keys.map((k) => `"${k}"`).join(', ')} was not acquired: the Redis node it was sent to no longer serves it (${redisSays}): a failover or slot move is in progress. Nothing was taken. Try again: the next attempt goes to the current master.`,
  lockNoAckConnection: (keys: readonly string[], cause: unknown) =>
    `Lock ${keys.map((k) => `"${k}"`).join(', ')} was not acquired: no connection to the master that owns it could be had for its replica acknowledgement${cause instanceof Error ? ` (${cause.message})` : ''}. Nothing was taken. Try again once that master answers.`,
  lockUnreachable: (keys: readonly string[]) =>
    `Lock ${keys.map((k) => `"${k}"`).join(', ')} was not acquired: Redis could not be reached (or the connection failed before the request went out), so nothing was taken. Try again once Redis is reachable.`,
  redlockLeaseExpired: (key: string, ttlMs: number) =>
    `Lock "${key}" was won, but its ${ttlMs} ms lease had run out by the time the masters' replies were in, so it was released. Redis is answering slowly: raise \`ttlMs\` or check the masters' latency.`,
  lockConnectionFailed: (key: string) =>
    `The connection to Redis failed while working on lock "${key}"; the outcome of that command is unknown. A lease that cannot be renewed ends by itself.`,
  lockPermissionDenied: (key: string, keyPrefix: string, redisSays: string) =>
    `Redis refused lock "${key}": the connection's Redis user lacks permission (${redisSays}), so nothing was done, and it was not retried. Grant that user the lock keys, the hand-off channel, the scripts and the commands they run: \`ACL SETUSER <user> ~${keyPrefix}* &${keyPrefix}handoff* +evalsha +eval +subscribe +info +exists +get +set +del +incr +pexpire +pttl +time +publish +zadd +zrem +zcard +zcount +zrange +zrangebyscore +zremrangebyscore +zscore\` (on Redis Cluster also +spublish +ssubscribe).`,
  lockRefused: (key: string, redisSays: string) =>
    `Redis answered a command on lock "${key}" with an error (${redisSays}); it was not retried. Fix the cause Redis names and try again.`,
  lockLost: (key: string, why: string) =>
    `Lock "${key}" was lost: ${why}. Another holder may be running now; stop the work, and use the fencing token where a stale write must be refused.`,
  replicaAcksMissing: (key: string, acknowledged: number, needed: number, timeoutMs: number) =>
    `Lock "${key}" was taken, but only ${acknowledged} of the ${needed} replica(s) that \`replicaAcks\` asks for acknowledged it within ${timeoutMs} ms (WAIT), so it was released at once: a failover to a replica that never saw it could hand the lock to a second holder. Check that the replicas are connected and keeping up (INFO replication), lower \`replicaAcks\`, or raise \`replicaAckTimeoutMs\`.`,
  replicaAcksUnsupported: (where: string) =>
    `${where}: \`replicaAcks\` is not available with \`locks.redlock\`: Redlock's safety comes from a majority of independent masters, which should have no replicas. Leave out \`replicaAcks\`, or take these locks through a module instance without \`locks.redlock\`.`,
  lockUpgrade: (key: string) =>
    `Lock "${key}" is held for reading in this call chain and cannot be upgraded to writing: take it for writing from the start.`,
  lockAtLeastForNotHere: (where: string) =>
    `${where}: option \`lockAtLeastFor\` is not available here: it keeps a lock after the work that holds it ends, and only @Locked() and LockService.using() see that end. Use one of those, or release the lock when you choose.`,
  lockShuttingDown: 'RedisTxModule is shutting down: no new lock can be acquired.',
  lockHolderShuttingDown: (keys: readonly string[]) =>
    `RedisTxModule is shutting down: the holder of lock ${keys.map((k) => `"${k}"`).join(', ')} should stop now. The lock is released when the holder returns, or once \`shutdownTimeoutMs\` has passed.`,
  lockLeaseExpired: (keys: readonly string[], ttlMs: number, waitMs: number) =>
    `Lock ${keys.map((k) => `"${k}"`).join(', ')} was won, but its ${ttlMs} ms lease may have ended before this process could use it (the reply or the hand-off came late: a slow network or Redis, or this process was paused), so it was given back and not handed over${waitMs > 0 ? `, and no later try got one in time within ${waitMs} ms` : ''}. Make \`ttlMs\` several times the round trip to Redis, or raise \`waitMs\` to keep trying.`,
  lockReentryLost: (keys: readonly string[]) =>
    `Lock ${keys.map((k) => `"${k}"`).join(', ')} is held by this call chain, but that lock was lost (its lease ended), so it cannot be entered again. The outer holder's signal has aborted: stop its work.`,
  watchPoolClosed:
    'RedisTxModule is shutting down: no new WATCH transaction can start, and nothing was sent.',
  moduleClosed:
    'RedisTxModule has shut down (app.close()): its connections are closed, and no transaction or lock can run on it any more.',
  httpRefused: (handler: string, status: number, code: string, detail: string) =>
    `${handler} answered ${status} ${code}: ${detail}`,
  hookFailed: (kind: string, label: string) =>
    `${kind} hook of ${label} failed; the transaction outcome stands.`,

  redlockTooFewMasters: (count: number | undefined, got: unknown) =>
    `RedisTxModule: option \`locks.redlock.connections\` must list at least 3 independent Redis masters; got ${count === undefined ? describe(got) : `${count}`}. A lock needs a majority of them, and with fewer than 3 the loss of a single master stops every lock. Give 3 or 5 masters on separate machines, or leave out \`locks.redlock\` to lock on \`connection\`.`,
  redlockMasterExpected:
    'one Redis master: a redis:// or rediss:// URL, ioredis RedisOptions (Sentinel included) or an ioredis Redis instance, not a Cluster, whose keys are spread over several masters',
  redlockSameMaster: (option: string, earlier: number) =>
    `RedisTxModule: option \`${option}\` names the same Redis server as \`locks.redlock.connections[${earlier}]\`. Redlock counts masters, so each must be a separate server: one server listed twice would count twice.`,
  redlockExclusiveOnly: (option: 'mode' | 'permits', where: string) =>
    `${where}: option \`${option}\` is not available with \`locks.redlock\`: locks taken by quorum over several masters are exclusive only. Leave out \`mode: 'read'\` and \`permits\`, or take read/write locks and semaphores through a module instance without \`locks.redlock\`.`,
  redlockNodeNoReply: (node: string, ms: number) =>
    `Redis master ${node} gave no reply within ${Math.round(ms)} ms.`,
  redlockNodeDown: (node: string, status: string) =>
    `Redis master ${node} is not connected (${status}).`,
  redlockNodeFailed: (node: string, why: string) => `Redis master ${node} failed: ${why}.`,
  redlockNodeNotHeld: (node: string) =>
    `Redis master ${node} no longer holds the lock (its key expired or carries another holder's token).`,
  redlockNoQuorum: (key: string, answered: number, needed: number, total: number, waitMs: number) =>
    `Lock "${key}" could not be taken: only ${answered} of ${total} Redlock masters answered${waitMs > 0 ? ` within ${waitMs} ms` : ''}, and ${needed} are needed. The error's cause lists each master's failure; bring the masters back, then try again.`,
  redlockNoMajority: (key: string, what: string, answered: number, needed: number, total: number) =>
    `Lock "${key}": only ${answered} of ${total} Redlock masters answered ${what}, and ${needed} are needed. The error's cause lists each master's failure.`,
  redlockNodeCauses: (key: string) => `Redlock masters that failed lock "${key}"`,

  inMemoryReplicaAcks: (where: string) =>
    `${where}: \`replicaAcks\` is not available with the in-memory lock store: it has no replicas. Leave out \`replicaAcks\` in unit tests, or test it against Redis (RedisTxTestingModule with \`lockStore: 'redis'\`).`,
  redisServerNotFound: (command: string) =>
    `RedisTxTestingModule: could not start \`${command}\`: it was not found. Install Redis so that \`redis-server\` is on the PATH (e.g. \`apt-get install redis-server\`, \`brew install redis\`), point \`server.command\` at it, give the URL of a Redis to use with \`redis\`, or use \`lockStore: 'in-memory'\` with \`redis: false\` for tests without Redis.`,
  redisServerNotReady: (command: string, why: string, output: string) =>
    `RedisTxTestingModule: \`${command}\` ${why}.${output ? `\nIts last output:\n${output}` : ''}`,
  testingDbInvalid: (db: unknown) =>
    `RedisTxTestingModule: option \`db\` must be an integer from 0 to 15 (the Redis database the tests of one file use); got ${describe(db)}.`,
  testingNoRedis: (what: string) =>
    `${what} needs Redis, and this RedisTxTestingModule runs without it (\`redis: false\`): only locks work, in memory. Give it a Redis for transactions: leave out \`redis\` (a throwaway redis-server is started) or pass a URL.`,
  testingNeedsLockStore: (redis: unknown) =>
    `RedisTxTestingModule: \`redis: ${describe(redis)}\` leaves no Redis for locks; set \`lockStore: 'in-memory'\` too, or give a Redis.`,
  lockExpiredByTest: 'its lease was ended on purpose by expireLock()',
  lockForceReleased:
    'LockService.forceRelease() freed it (an operator, or a health check, judged it stuck); its fencing token is stale, so a fenced resource refuses its writes',
  lockHandedOver:
    'lock.toHandle() handed it over to whoever adopts the handle; this process no longer renews or releases it',
  lockAdminOnRedlock: (method: string) =>
    `LockService.${method}() is not available with \`locks.redlock\`: each master keeps its own copy of the lock, and no one master's view is the lock's. Inspect or free the lock through a module instance without \`locks.redlock\` on each master, or wait for its lease to end by itself.`,
  lockHandleReentered: (keys: readonly string[]) =>
    `Lock.toHandle(): lock ${keys.map((k) => `"${k}"`).join(', ')} is re-entered in this call chain (an outer holder still has it), so it cannot be handed over; call toHandle() on the outermost lock, outside any other holder of the same keys.`,
  lockHandleNotHeld: (keys: readonly string[]) =>
    `Lock.toHandle(): lock ${keys.map((k) => `"${k}"`).join(', ')} is no longer held here (released, lost, or handed over already), so there is nothing to hand over.`,
  lockHandleInvalid: (why: string) =>
    `LockService.adopt(): the handle ${why}. Pass the object lock.toHandle() returned, unchanged (after a JSON round trip is fine).`,
  lockHandleExpired: (keys: readonly string[], lateMs: number) =>
    `LockService.adopt(): the lease of lock ${keys.map((k) => `"${k}"`).join(', ')} ended about ${Math.round(lateMs)} ms before the handle arrived, so it was not adopted: someone else may hold it now. Hand it over faster, or take it with a longer \`ttlMs\`.`,
  lockHandleNotOwner: (keys: readonly string[]) =>
    `LockService.adopt(): lock ${keys.map((k) => `"${k}"`).join(', ')} is no longer held by the handle's holder (its lease ended, or it was force-released), so it was not adopted: someone else may hold it now.`,
  expireLockForeign:
    'expireLock(): that lock was not acquired through LockService (or @Locked); pass the lock that LockService.acquire(), tryAcquire() or using() gave you.',
  lockNotHeldDuring: (key: string, seen: readonly string[]) =>
    `Expected lock "${key}" to be held while the code ran, but it was not acquired then${seen.length > 0 ? `; locks acquired meanwhile: ${seen.map((k) => `"${k}"`).join(', ')}` : ' (no lock was acquired at all)'}.`,
  lockNotHeldNow: (key: string) =>
    `Expected lock "${key}" to be held by this process now, but it is not: it was never acquired, or was already released or lost.`,
} as const;

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined || typeof value !== 'object') return String(value);
  return value.constructor?.name ?? 'object';
}
