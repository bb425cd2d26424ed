/**
 * Fields that make Nest's default exception filter answer with this status and
 * the error's message (it treats errors shaped like those of the `http-errors`
 * package as HTTP errors), so no filter or interceptor has to be installed.
 */
export function markAsHttpConflict(error: Error): void {
  Object.defineProperties(error, {
    statusCode: { value: 409, enumerable: false },
    status: { value: 409, enumerable: false },
    expose: { value: true, enumerable: false },
  });
}
