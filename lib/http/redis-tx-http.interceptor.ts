import {
  Inject,
  Injectable,
  Logger,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { catchError, throwError, type Observable } from 'rxjs';
import { httpAnswers, httpCodeOf } from '../errors/http-status.js';
import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import { RedisTxHttpException } from './redis-tx-http.exception.js';
import { retryAfterSeconds } from './retry-after.js';

/** Credentials in a URL (`scheme://user:password@`), should a cause's message carry one. */
const urlCredentials = /\b([a-z][\w+.-]*:\/\/)[^\s/@]*@/gi;
const withoutCredentials = (text: string) => text.replace(urlCredentials, '$1***@');

/**
 * Answers an HTTP request whose handler failed with one of this library's
 * refusals (see `markHttpStatus`): rethrows it as a RedisTxHttpException,
 * which Nest answers with the client-safe body and does not log, adds a
 * Retry-After header where the library knows when a retry can succeed, and
 * logs the refusal itself, once: an expected one (busy, conflict, shutting
 * down) at debug level, an infrastructure failure as an error. Headers go
 * through the HTTP adapter, so Express and Fastify behave alike. Other
 * errors, and other contexts (microservices, WebSockets, GraphQL), pass
 * through untouched. The module registers it globally (APP_INTERCEPTOR).
 */
@Injectable()
export class RedisTxHttpInterceptor implements NestInterceptor {
  private readonly logger = new Logger('RedisTx');
  private readonly shutdownTimeoutMs: number;
  private readonly exposeLockNames: boolean;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions,
  ) {
    this.shutdownTimeoutMs = options.shutdownTimeoutMs;
    this.exposeLockNames = options.http.exposeLockNames;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    return next.handle().pipe(
      catchError((error: unknown) => {
        const code = httpCodeOf(error);
        if (code === undefined || !(error instanceof Error)) return throwError(() => error);
        const { status } = httpAnswers[code];
        this.log(error, status, code, `${context.getClass().name}.${context.getHandler().name}`);
        const seconds = retryAfterSeconds(code, this.shutdownTimeoutMs);
        const adapter = this.adapterHost.httpAdapter;
        const response: unknown = context.switchToHttp().getResponse();
        if (seconds !== undefined && adapter && !adapter.isHeadersSent(response)) {
          adapter.setHeader(response, 'Retry-After', String(seconds));
        }
        const locks =
          this.exposeLockNames && error instanceof LockNotAcquiredError ? error.keys : undefined;
        return throwError(() => new RedisTxHttpException(code, error, { locks }));
      }),
    );
  }

  /**
   * One line per refusal. Contention and shutting down are the system
   * working as designed: debug, no stack. Redis or the outcome being lost is
   * something to look at: an error with the stack, scrubbed of URL
   * credentials. Neither prints the error object, whose cause may carry a
   * command's arguments (a lock's token among them).
   */
  private log(error: Error, status: number, code: string, handler: string): void {
    const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : '';
    const line = messages.httpRefused(handler, status, code, error.message);
    if (status === 409 || code === 'SHUTTING_DOWN') {
      this.logger.debug(withoutCredentials(line));
      return;
    }
    this.logger.error(withoutCredentials(line + cause), withoutCredentials(error.stack ?? ''));
  }
}
