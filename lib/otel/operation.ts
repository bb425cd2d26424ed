import {
  context,
  createContextKey,
  trace,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';

/** One traced operation of the library, open from its `start` to its `asyncEnd`. */
export interface Operation {
  readonly kind: 'acquire' | 'hold' | 'transaction';
  readonly span: Span;
  /** The context the span was started in: its parent's. */
  readonly parent: Context;
  readonly started: number;
  /** The span's attributes at its start; the metrics take the bounded ones. */
  readonly attributes: Attributes;
  /** An acquisition that found the lock busy and counts as a waiter. */
  waiting: boolean;
  /** A transaction's attempts and conflicts, from the event channels published inside it. */
  attempts: number;
  conflicts: number;
}

/** Marks the library operation a context belongs to, for the events published inside it. */
const OPERATION = createContextKey('nestjs-redis-tx operation');

/** The context in which the work of `op` runs: its span active, and `op` findable. */
export function contextOf(op: Operation): Context {
  return trace.setSpan(op.parent, op.span).setValue(OPERATION, op);
}

/** The innermost library operation `ctx` belongs to. */
export function operationIn(ctx: Context): Operation | undefined {
  return ctx.getValue(OPERATION) as Operation | undefined;
}

/** The innermost library operation of the active context, if it is of `kind`. */
export function activeOperation(kind: Operation['kind']): Operation | undefined {
  const op = operationIn(context.active());
  return op?.kind === kind ? op : undefined;
}
