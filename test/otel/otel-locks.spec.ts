import 'reflect-metadata';
import { hasSubscribers } from 'node:diagnostics_channel';
import { Injectable } from '@nestjs/common';
import { SpanStatusCode } from '@opentelemetry/api';
import {
  channelNames,
  InvalidOptionsError,
  Locked,
  LockService,
  RedisTx,
  type Lock,
} from '../../lib/index.js';
import { tracing } from '../../lib/diagnostics/redis-tx.tracing.js';
import { attributeNames as at, metricNames } from '../../lib/otel/index.js';
import { expireLock } from '../../lib/testing/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { nextEvent } from '../support/next-event.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { named, parentOf, useOtel } from './otel-bed.js';

@Injectable()
class Jobs {
  constructor(readonly locks: LockService) {}

  @Locked((id: string) => `job:${id}`)
  async run(id: string) {
    return `${id} ran`;
  }
}

/** The holder's token of each name, which no span may carry. */
function tokensOf(lock: Lock): string[] {
  return (lock as unknown as { parts: { token: string }[] }).parts.map((part) => part.token);
}

describe('nestjs-redis-tx/otel: locks', () => {
  useUnhandledRejections();
  // No polling fallback within a test: a waiter is woken by the release, or not at all.
  const bed = useAppWithRedis({ providers: [Jobs], options: { locks: { pollMs: 600_000 } } });
  const otel = useOtel();
  const locks = () => bed.app.get(LockService);

  it('spans lock.acquire and lock.hold under the active span, named by the template, never by the key or the token', async () => {
    let tokens: string[] = [];
    const { request } = await otel.inRequest(() =>
      locks().using(
        'order:42',
        async (lock) => {
          tokens = tokensOf(lock);
        },
        { traceName: 'order' },
      ),
    );
    const spans = otel.librarySpans();
    const [acquire] = named(spans, 'lock.acquire');
    const [hold] = named(spans, 'lock.hold');
    expect(acquire!.attributes).toMatchObject({
      [at.name]: 'order',
      [at.lockMode]: 'write',
      [at.lockKeyCount]: 1,
      [at.lockOutcome]: 'acquired',
      [at.lockWokenBy]: 'first-try',
    });
    expect(hold!.attributes).toMatchObject({
      [at.name]: 'order',
      [at.lockMode]: 'write',
      [at.lockOutcome]: 'released',
    });
    // A hold outlives its acquisition: both are children of the request.
    const requestId = request.spanContext().spanId;
    expect(parentOf(acquire!)).toBe(requestId);
    expect(parentOf(hold!)).toBe(requestId);
    // The acquisition's own Redis commands (ioredis's tracing channel) are its children.
    const acquireId = acquire!.spanContext().spanId;
    const underAcquire = otel.spans().filter((span) => parentOf(span) === acquireId);
    expect(underAcquire.map((span) => span.name)).toContainEqual(
      expect.stringMatching(/^redis eval(sha)?$/),
    );

    const recorded = JSON.stringify(
      spans.map(({ name, attributes, events, status, links }) => ({
        name,
        attributes,
        events,
        status,
        links,
      })),
    );
    expect(tokens[0]!.length).toBeGreaterThan(8);
    expect(recorded).not.toContain('order:42');
    for (const token of tokens) expect(recorded).not.toContain(token);
  });

  it('names a @Locked method’s lock by the decorator, whatever its key', async () => {
    await otel.inRequest(() => bed.app.get(Jobs).run('7'));
    const [acquire] = named(otel.librarySpans(), 'lock.acquire');
    expect(acquire!.attributes[at.name]).toBe('@Locked() on Jobs.run');
    expect(JSON.stringify(acquire!.attributes)).not.toContain('job:7');
  });

  it('a contended lock records the waiter, its wait and the hand-off from the release', async () => {
    const attributes = { [at.name]: 'contended', [at.lockMode]: 'write' };
    const holder = await locks().acquire('contended:1', { traceName: 'contended' });
    const waitBegan = nextEvent(channelNames.lockWait);
    const waitStarted = performance.now();
    const waiting = locks().acquire('contended:1', { traceName: 'contended', waitMs: 600_000 });
    await waitBegan;
    await otel.collect();
    expect(otel.sum(metricNames.lockWaiters, attributes)).toBe(1);

    const releasing = performance.now();
    await holder.release();
    const waiter = await waiting;
    const granted = performance.now();
    await waiter.release();

    await otel.collect();
    expect(otel.sum(metricNames.lockWaiters, attributes)).toBe(0);
    const waits = otel.histogram(metricNames.lockWait, {
      ...attributes,
      [at.lockOutcome]: 'acquired',
    });
    expect(waits!.count).toBe(2);
    // The waiter's wait spans at least until the release began, and no longer than the call.
    expect(waits!.max).toBeGreaterThanOrEqual(releasing - waitStarted);
    expect(waits!.max).toBeLessThanOrEqual(granted - waitStarted);
    const handOff = otel.histogram(metricNames.lockHandOff, attributes);
    expect(handOff!.count).toBe(1);
    expect(handOff!.max).toBeLessThanOrEqual(granted - releasing);
    const holds = otel.histogram(metricNames.lockHold, {
      ...attributes,
      [at.lockOutcome]: 'released',
    });
    expect(holds!.count).toBe(2);
    const wokenBy = named(otel.librarySpans(), 'lock.acquire').map(
      (s) => s.attributes[at.lockWokenBy],
    );
    expect(wokenBy).toEqual(['first-try', 'release']);
  });

  it('a refusal records its reason, on the span and in the refusals counter', async () => {
    const holder = await locks().acquire('busy:1', { traceName: 'busy' });
    try {
      await expect(locks().tryAcquire('busy:1', { traceName: 'busy' })).resolves.toBeNull();
    } finally {
      await holder.release();
    }
    const refused = named(otel.librarySpans(), 'lock.acquire').find(
      (span) => span.attributes[at.lockOutcome] === 'refused',
    );
    expect(refused!.attributes[at.lockReason]).toBe('busy');
    expect(refused!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'busy' });
    await otel.collect();
    expect(otel.sum(metricNames.lockRefusals, { [at.name]: 'busy', [at.lockReason]: 'busy' })).toBe(
      1,
    );
    expect(otel.histogram(metricNames.lockWait, { [at.lockOutcome]: 'refused' })!.count).toBe(1);
  });

  it('a lost lease ends the hold as lost and counts the loss', async () => {
    const lock = await locks().acquire('lease:7', { traceName: 'lease' });
    await expireLock(lock);
    await lock.release();
    const [hold] = named(otel.librarySpans(), 'lock.hold');
    expect(hold!.attributes[at.lockOutcome]).toBe('lost');
    expect(hold!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'lost' });
    expect(JSON.stringify(hold!.attributes)).not.toContain('lease:7');
    await otel.collect();
    expect(otel.sum(metricNames.lockLosses, { [at.name]: 'lease' })).toBe(1);
    expect(otel.histogram(metricNames.lockHold, { [at.lockOutcome]: 'lost' })!.count).toBe(1);
  });

  it('renewals are counted by template, and their Redis commands are children of lock.hold', async () => {
    // Renewed a third of the way into the lease.
    const lock = await locks().acquire('renewed:1', { traceName: 'renewed', ttlMs: 3_000 });
    await nextEvent(channelNames.lockRenew);
    await lock.release();
    await otel.collect();
    expect(otel.sum(metricNames.lockRenewals, { [at.name]: 'renewed' })).toBeGreaterThanOrEqual(1);
    const [hold] = named(otel.librarySpans(), 'lock.hold');
    const holdId = hold!.spanContext().spanId;
    expect(otel.spans().filter((span) => parentOf(span) === holdId).length).toBeGreaterThanOrEqual(
      1,
    );
  });

  it('refuses a traceName that is not a non-empty string, before touching Redis', async () => {
    await expect(locks().acquire('named:1', { traceName: 42 as never })).rejects.toThrow(
      InvalidOptionsError,
    );
    await expect(bed.app.get(RedisTx).run(async () => {}, { traceName: '' })).rejects.toThrow(
      /traceName/,
    );
    expect(otel.librarySpans()).toEqual([]);
  });

  it('once unregistered, leaves no subscriber and wraps no call', async () => {
    otel.unregister();
    for (const channel of Object.values(tracing)) expect(channel.hasSubscribers).toBe(false);
    for (const name of Object.values(channelNames)) expect(hasSubscribers(name)).toBe(false);
    const spies = [
      jest.spyOn(tracing.lockAcquire, 'tracePromise'),
      jest.spyOn(tracing.lockHold.start, 'runStores'),
      jest.spyOn(tracing.transaction, 'tracePromise'),
    ];
    try {
      await locks().using('quiet:1', () => undefined);
      await bed.app.get(RedisTx).run(async () => {});
      for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(otel.librarySpans()).toEqual([]);
  });
});
