import 'reflect-metadata';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Redis, type RedisOptions } from 'ioredis';
import { CommandGuard } from '../../lib/connection/command-guard.js';
import { ConnectionLostError } from '../../lib/errors/connection-lost.error.js';
import { RedisTx, Transactional, TransactionOutcomeUnknownError } from '../../lib/index.js';
import { useFaultProxy } from '../support/fault-proxy.js';
import { createTestApp } from '../support/nest-app.js';
import { useRedisServer } from '../support/redis.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';

/** What the tests read of the guard: the commands it watches. */
type Watched = { inFlight: { list(): { name: string }[] } };

/** How long the library waits for one reply here: short, so that a silent server is found quickly. */
const COMMAND_TIMEOUT_MS = 300;

const watchedNames = (guard: Watched) => guard.inFlight.list().map(({ name }) => name);

/** Settles with the rejection, and fails the test if `reply` is answered. */
const rejectionOf = (reply: Promise<unknown>) =>
  reply.then(
    () => {
      throw new Error('expected no answer');
    },
    (error: unknown) => error,
  );

describe('CommandGuard and MULTI blocks', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  const clients: Redis[] = [];

  async function connected(options: RedisOptions): Promise<Redis> {
    const client = new Redis(net.proxy.url, { lazyConnect: true, ...options });
    clients.push(client);
    await client.connect();
    return client;
  }

  afterEach(() => {
    for (const client of clients.splice(0)) client.disconnect();
  });

  it('watches a block by its EXEC alone where nothing waits unwritten, and a drop fails all of it', async () => {
    const client = await connected({ enableOfflineQueue: false });
    const guard = new CommandGuard(client, 600_000) as unknown as Watched;
    net.proxy.dropReplies();
    const error = rejectionOf(client.multi().incr('block:a').incr('block:b').exec());
    expect(watchedNames(guard)).toEqual(['exec']);

    net.proxy.cutAll();
    // The block settles only once every command of it has: MULTI and the
    // queued commands, untracked, are failed with their EXEC.
    expect(await error).toBeInstanceOf(ConnectionLostError);
    expect((await error) as ConnectionLostError).toMatchObject({ reason: 'closed' });
  });

  it('fails the whole block once its EXEC is overdue on a silent server', async () => {
    const client = await connected({ enableOfflineQueue: false });
    new CommandGuard(client, COMMAND_TIMEOUT_MS);
    net.proxy.dropReplies();
    const error = await rejectionOf(client.multi().incr('block:a').incr('block:b').exec());
    expect(error).toBeInstanceOf(ConnectionLostError);
    expect(error).toMatchObject({ reason: 'silent' });
  });

  it('watches every command of a block where it could wait unwritten (an offline queue)', async () => {
    const client = await connected({});
    const guard = new CommandGuard(client, 600_000) as unknown as Watched;
    net.proxy.dropReplies();
    const error = rejectionOf(client.multi().incr('block:a').incr('block:b').exec());
    expect(watchedNames(guard)).toEqual(['multi', 'incr', 'incr', 'exec']);
    net.proxy.cutAll();
    expect(await error).toBeInstanceOf(ConnectionLostError);
  });
});

@Injectable()
class Tally {
  constructor(readonly redis: RedisTx) {}

  @Transactional()
  async add(id: string) {
    this.redis.multi.incr('tally:count').sadd('tally:ids', id);
  }
}

describe('a transaction whose queued command loses its reply', () => {
  useUnhandledRejections();
  const redis = useRedisServer();
  const net = useFaultProxy(() => redis.server);
  let app: INestApplication;
  let observer: Redis;
  const tally = () => app.get(Tally);

  beforeAll(async () => {
    observer = new Redis(redis.server.url);
    app = await createTestApp({
      options: { connection: net.proxy.url, commandTimeoutMs: COMMAND_TIMEOUT_MS },
      providers: [Tally],
    });
  });
  redis.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });
  beforeEach(() => observer.flushall());

  it('to a silent server: outcome unknown (EXEC was written), and the next transaction commits', async () => {
    const fault = net.proxy.faultOn('SADD', 'drop-reply');
    const error = await tally()
      .add('first')
      .catch((e: unknown) => e);
    await fault;
    expect(error).toBeInstanceOf(TransactionOutcomeUnknownError);

    await tally().add('second');
    // Redis ran the first one, whose replies alone were lost; never resent.
    expect(await observer.get('tally:count')).toBe('2');
    expect((await observer.smembers('tally:ids')).sort()).toEqual(['first', 'second']);
  });

  it('to a cut before EXEC reached Redis: outcome unknown, nothing of it applied, and the next transaction commits', async () => {
    const fault = net.proxy.faultOn('SADD', 'cut-after-send');
    const error = await tally()
      .add('first')
      .catch((e: unknown) => e);
    await fault;
    // The client wrote EXEC with the rest: it cannot know that it never arrived.
    expect(error).toBeInstanceOf(TransactionOutcomeUnknownError);

    await tally().add('second');
    // Redis discarded the block without its EXEC: no half of it was applied.
    expect(await observer.get('tally:count')).toBe('1');
    expect(await observer.smembers('tally:ids')).toEqual(['second']);
  });
});
