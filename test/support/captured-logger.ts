import type { INestApplication, LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { RedisTxModule } from '../../lib/index.js';
import type { TestAppSpec } from './nest-app.js';

/** A Nest logger that keeps every line it is given, so a test can read what an operator would. */
export class CapturedLogger implements LoggerService {
  readonly lines: string[] = [];

  log(message: unknown, ...rest: unknown[]): void {
    this.keep('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.keep('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.keep('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.keep('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.keep('verbose', message, rest);
  }

  /** Every line, with its level and context, as one string to search. */
  get text(): string {
    return this.lines.join('\n');
  }

  private keep(level: string, message: unknown, rest: unknown[]): void {
    // Objects (errors, with their stacks and causes) are kept in full, as a logger would print them.
    const parts = [message, ...rest].map((part) =>
      part instanceof Error
        ? `${part.stack ?? part.message} ${JSON.stringify(part)}`
        : String(part),
    );
    this.lines.push(`[${level}] ${parts.join(' ')}`);
  }
}

/** As createTestApp, but logging to `logger` instead of being silent. */
export async function createLoggedApp(
  spec: TestAppSpec,
  logger: CapturedLogger,
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [RedisTxModule.forRoot(spec.options), ...(spec.imports ?? [])],
    providers: spec.providers ?? [],
    controllers: spec.controllers ?? [],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return app;
}
