import { inspect } from 'node:util';

/** Everything a user could print of a value: message, stack, own properties, the whole cause chain. */
export function exposed(value: unknown): string {
  const seen: string[] = [inspect(value, { depth: 12, showHidden: true })];
  for (let cause = value, depth = 0; cause instanceof Error && depth < 12; depth++) {
    seen.push(cause.message, cause.stack ?? '', JSON.stringify(cause) ?? '');
    cause = cause.cause;
  }
  return seen.join('\n');
}
