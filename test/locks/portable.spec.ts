import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { Controller, HttpCode, Param, Post } from '@nestjs/common';
import { Queue } from 'bullmq';
import request from 'supertest';
import {
  InvalidOptionsError,
  type LockHandle,
  LockLostError,
  LockService,
} from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { exposed } from '../support/exposed.js';
import { ForkedWorker } from '../support/forked-worker.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

const script = fileURLToPath(new URL('./fixtures/portable-worker.mjs', `file://${__filename}`));

/** The queue the handler below adds to; made once the Redis server is up. */
let reports: Queue;

/** An HTTP handler that takes the lock for a report and hands the building to a BullMQ worker. */
@Controller('reports')
class ReportsController {
  constructor(private readonly locks: LockService) {}

  @Post(':id')
  @HttpCode(202)
  async build(@Param('id') id: string) {
    const lock = await this.locks.acquire(`report:${id}`, { ttlMs: 30_000, waitMs: 0 });
    await reports.add('build', { id, handle: lock.toHandle() });
    return { accepted: id, fencingToken: lock.fencingToken };
  }
}

describe('handing a lock over to another process (the built package)', () => {
  const bed = useAppWithRedis({ controllers: [ReportsController] });
  useUnhandledRejections();
  const locks = () => bed.app.get(LockService);
  const workers: ForkedWorker[] = [];
  const start = (mode: string) => {
    const worker = ForkedWorker.start(script, [mode, bed.server.url]);
    workers.push(worker);
    return worker;
  };
  beforeAll(() => {
    const { hostname, port } = new URL(bed.server.url);
    reports = new Queue('reports', {
      connection: { host: hostname, port: Number(port), maxRetriesPerRequest: null },
    });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.kill()));
  });
  bed.beforeStop(() => reports?.close());

  it('B adopts what A handed over: same fencing token, renewed by B, released by B; A lets go', async () => {
    // B is up before the short lease starts: starting a process is not what is tested.
    const b = start('adopt');
    await b.line('ready');
    const lock = await locks().acquire('handed', { ttlMs: 1_500 });
    const handle = lock.toHandle();
    expect(lock.signal.aborted).toBe(true);
    expect((lock.signal.reason as LockLostError).reason).toBe('handed-over');

    b.tell(JSON.stringify(handle));
    expect(Number(await b.line('adopted'))).toBe(lock.fencingToken);
    // B renews (a third of the lease after adopting); A never does again.
    await b.line('renewed');
    const seen = await locks().inspect('handed');
    expect(seen.holders).toEqual([
      expect.objectContaining({ mode: 'write', fencingToken: lock.fencingToken }),
    ]);
    expect(await lock.release()).toBe(false);
    expect(await locks().isLocked('handed')).toBe(true);

    b.tell('release');
    expect(await b.line('released')).toBe('true');
    expect(await b.exitCode()).toBe(0);
    const next = await locks().acquire('handed');
    expect(next.fencingToken).toBeGreaterThan(lock.fencingToken);
    await next.release();
  });

  it('B refuses a handle whose lock was force-released, and one whose lease has ended, never showing the token', async () => {
    const lock = await locks().acquire('refused', { ttlMs: 10_000 });
    const handle = lock.toHandle();
    await locks().forceRelease('refused');
    const b = start('adopt');
    b.tell(JSON.stringify(handle));
    const [reason, message] = splitFirst(await b.line('refused'));
    expect(reason).toBe('lease-expired');
    expect(message).toMatch(/no longer held by the handle's holder/);
    expect(message).not.toContain(handle.tokens[0]!.slice(0, 32));
    expect(await b.exitCode()).toBe(0);

    const stale: LockHandle = { ...handle, issuedAt: handle.issuedAt - handle.leaseRemainingMs };
    const c = start('adopt');
    c.tell(JSON.stringify(stale));
    const [lateReason, lateMessage] = splitFirst(await c.line('refused'));
    expect(lateReason).toBe('lease-expired');
    expect(lateMessage).toMatch(/lease .* ended about/);
    expect(await c.exitCode()).toBe(0);
  });

  it('keeps the token out of what an invalid handle is refused with', async () => {
    const lock = await locks().acquire('malformed', { ttlMs: 10_000 });
    const handle = lock.toHandle();
    const error = await locks()
      .adopt({ ...handle, version: 2 } as unknown as LockHandle)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(exposed(error)).not.toContain(handle.tokens[0]!.slice(0, 32));
    await (await locks().adopt(handle)).release();
  });

  it('recipe: an HTTP handler takes the lock and queues a BullMQ job; a worker in B adopts, builds and releases', async () => {
    const b = start('bullmq');
    await b.line('listening');
    const response = await request(bed.app.getHttpServer()).post('/reports/42').expect(202);
    const { fencingToken } = response.body as { fencingToken: number };
    // Until the worker has finished, the report is locked for everyone else.
    const [id, builtUnder, released] = (await b.line('done')).split(' ');
    expect([id, Number(builtUnder), released]).toEqual(['42', fencingToken, 'true']);
    expect(await bed.observer.get('report:42')).toBe(`built under ${fencingToken}`);
    expect(await locks().isLocked('report:42')).toBe(false);
    expect(await b.exitCode()).toBe(0);
  });
});

function splitFirst(line: string): [string, string] {
  const space = line.indexOf(' ');
  return [line.slice(0, space), JSON.parse(line.slice(space + 1)) as string];
}
