import { HttpException } from '@nestjs/common';
import { httpAnswers, type RedisTxHttpCode } from '../errors/http-status.js';

/** The JSON body of an HTTP answer to one of the library's errors. */
export interface RedisTxHttpBody {
  statusCode: number;
  /** Stable and machine-readable: see `docs/http.md` for the table. */
  code: RedisTxHttpCode;
  /** Short and client-safe; it names nothing inside the application. */
  message: string;
  /** The refused lock's names, only with the module option `http.exposeLockNames`. */
  locks?: string[];
}

/**
 * What one of the library's errors becomes when it leaves an HTTP handler:
 * an HttpException, which Nest answers without logging it, with a
 * client-safe body. The library's error, with its developer-facing message,
 * is the `cause`. An exception filter of the application's own can catch
 * this class (or HttpException) to shape the answer differently.
 */
export class RedisTxHttpException extends HttpException {
  declare readonly cause: Error;

  constructor(
    readonly code: RedisTxHttpCode,
    cause: Error,
    extra: { locks?: readonly string[] } = {},
  ) {
    const { status, message } = httpAnswers[code];
    const body: RedisTxHttpBody = { statusCode: status, code, message };
    if (extra.locks) body.locks = [...extra.locks];
    super(body, status, { cause });
  }
}
