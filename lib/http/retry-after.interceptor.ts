import {
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { catchError, throwError, type Observable } from 'rxjs';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import type { ResolvedRedisTxOptions } from '../module/redis-tx.options.js';
import { retryAfterSeconds } from './retry-after.js';

/**
 * Adds a Retry-After header to the answer of an HTTP handler that failed
 * with one of this library's errors, where the library knows when a retry
 * can succeed. The status and body come from the error itself (see
 * `markHttpStatus`) through whichever exception filter answers; this only
 * sets the header, through the HTTP adapter, so it works on Express and
 * Fastify alike. Other contexts (microservices, WebSockets, GraphQL) pass
 * through untouched. The module registers it globally (APP_INTERCEPTOR).
 */
@Injectable()
export class RetryAfterInterceptor implements NestInterceptor {
  private readonly shutdownTimeoutMs: number;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(REDIS_TX_OPTIONS) options: ResolvedRedisTxOptions,
  ) {
    this.shutdownTimeoutMs = options.shutdownTimeoutMs;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    return next.handle().pipe(
      catchError((error: unknown) => {
        const seconds = retryAfterSeconds(error, this.shutdownTimeoutMs);
        const adapter = this.adapterHost.httpAdapter;
        const response: unknown = context.switchToHttp().getResponse();
        if (seconds !== undefined && adapter && !adapter.isHeadersSent(response)) {
          adapter.setHeader(response, 'Retry-After', String(seconds));
        }
        return throwError(() => error);
      }),
    );
  }
}
