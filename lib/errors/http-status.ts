import type { LockRefusalReason } from './lock-not-acquired.error.js';

/** The HTTP statuses this library's errors answer with, when raised from an HTTP handler. */
export type RedisTxHttpStatus = 409 | 503;

/**
 * The stable, machine-readable `code` of an HTTP answer to one of this
 * library's errors. Clients can branch on it; it never changes meaning.
 */
export type RedisTxHttpCode =
  | 'LOCK_BUSY'
  | 'LOCK_TIMEOUT'
  | 'LOCK_WOULD_DEADLOCK'
  | 'LOCK_ABORTED'
  | 'TRANSACTION_CONFLICT'
  | 'SHUTTING_DOWN'
  | 'SERVICE_UNAVAILABLE'
  | 'OUTCOME_UNKNOWN';

/**
 * What an API client is shown for each code: a status and a message that
 * say nothing of the application's internals (no method, key or option
 * names, no advice meant for its developers; those stay in the error's own
 * `message`, for the logs). 409: contention or the request's own doing;
 * 503: Redis or the application could not serve it just now.
 */
export const httpAnswers: Readonly<
  Record<RedisTxHttpCode, { status: RedisTxHttpStatus; message: string }>
> = {
  LOCK_BUSY: { status: 409, message: 'The resource is busy; try again.' },
  LOCK_TIMEOUT: { status: 409, message: 'The resource stayed busy; try again later.' },
  LOCK_WOULD_DEADLOCK: {
    status: 409,
    message: 'The request conflicts with work it is already doing.',
  },
  LOCK_ABORTED: {
    status: 409,
    message: 'The request was cancelled while it waited for a busy resource.',
  },
  TRANSACTION_CONFLICT: {
    status: 409,
    message: 'The data changed while the request ran; try again.',
  },
  SHUTTING_DOWN: { status: 503, message: 'The service is shutting down; try again shortly.' },
  SERVICE_UNAVAILABLE: {
    status: 503,
    message: 'The service is temporarily unavailable; try again later.',
  },
  OUTCOME_UNKNOWN: {
    status: 503,
    message: 'Whether the request took effect is unknown; check before trying again.',
  },
};

/** The code of each lock refusal. Only `busy` and `timeout` mean someone else holds the lock. */
export const lockRefusalCode: Readonly<Record<LockRefusalReason, RedisTxHttpCode>> = {
  busy: 'LOCK_BUSY',
  timeout: 'LOCK_TIMEOUT',
  'would-deadlock': 'LOCK_WOULD_DEADLOCK',
  aborted: 'LOCK_ABORTED',
  shutdown: 'SHUTTING_DOWN',
  // Nothing was done for the request in any of these: the client may simply retry.
  connection: 'SERVICE_UNAVAILABLE',
  'outcome-unknown': 'SERVICE_UNAVAILABLE',
  'no-quorum': 'SERVICE_UNAVAILABLE',
  'replica-acks': 'SERVICE_UNAVAILABLE',
  'lease-expired': 'SERVICE_UNAVAILABLE',
};

// A registered symbol, so that two copies of the library in one process read each other's marks.
const httpCode = Symbol.for('nestjs-redis-tx:http-code');

/**
 * Marks the error as one that answers an HTTP request with `code`. The
 * module's HTTP interceptor turns a marked error into an HttpException
 * with the client-safe body of {@link httpAnswers}. Where that interceptor
 * does not run (an error raised by a guard or a middleware), the
 * `statusCode`/`status`/`expose` fields still make Nest's default filter
 * answer with the status; `expose: false` makes it send the status' own
 * text (e.g. "Conflict") instead of the developer-facing message.
 */
export function markHttpStatus(error: Error, code: RedisTxHttpCode): void {
  const { status } = httpAnswers[code];
  Object.defineProperties(error, {
    [httpCode]: { value: code, enumerable: false },
    statusCode: { value: status, enumerable: false },
    status: { value: status, enumerable: false },
    expose: { value: false, enumerable: false },
  });
}

/** The code an error was marked with, or undefined for any other error. */
export function httpCodeOf(error: unknown): RedisTxHttpCode | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { [httpCode]?: unknown })[httpCode];
  return typeof code === 'string' && Object.hasOwn(httpAnswers, code)
    ? (code as RedisTxHttpCode)
    : undefined;
}
