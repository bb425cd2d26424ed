import 'reflect-metadata';
import { Controller, Injectable, type INestApplication } from '@nestjs/common';
import { EventPattern, Payload, Transport, type MicroserviceOptions } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { Cluster, Redis } from 'ioredis';
import {
  RedisTx,
  RedisTxModule,
  Transactional,
  TransactionCrossSlotError,
} from '../../lib/index.js';
import { publishEvent } from '../../sample-app/src/nest-event.js';
import { useRedisCluster } from '../support/cluster.js';
import { createTestApp } from '../support/nest-app.js';
import { expectNoHandlesBeyond, openHandles } from '../support/open-handles.js';
import { useRedisServer } from '../support/redis.js';
import { eventually, Slack } from '../support/timing.js';
import { useUnhandledRejections } from '../support/unhandled-rejections.js';
import { Inbox } from './fixtures/inbox.js';
import {
  STREAM_CONSUMER_CONFIG,
  StreamConsumer,
  type StreamConsumerConfig,
} from './fixtures/stream-consumer.js';

// A PUBLISH or XADD queued on RedisTx.multi travels in the transaction's
// MULTI … EXEC: it happens exactly when the data changes, and never for an
// attempt that threw or lost a WATCH conflict.

class PaymentDeclined extends Error {}

const PLACED = 'order.placed';
const RESERVED = 'stock.reserved';

interface Placed {
  id: string;
  total: number;
}
interface Reserved {
  item: string;
  left: number;
  attempt: number;
}
type Received =
  { pattern: typeof PLACED; data: Placed } | { pattern: typeof RESERVED; data: Reserved };

/** A bound for a wait that is not what a test measures: generous, and growing with the lag seen. */
const readinessBound = (slack: Slack) => () => 30_000 + slack.ms;

@Injectable()
class Orders {
  reserveAttempts = 0;

  constructor(private readonly redis: RedisTx) {}

  @Transactional()
  async place(id: string, total: number): Promise<void> {
    this.redis.multi.hset(`order:${id}`, { total });
    publishEvent<Placed>(this.redis.multi, PLACED, { id, total });
  }

  @Transactional()
  async placeThenDecline(id: string, total: number): Promise<void> {
    this.redis.multi.hset(`order:${id}`, { total });
    publishEvent<Placed>(this.redis.multi, PLACED, { id, total });
    throw new PaymentDeclined(`order ${id}`);
  }

  /** On its first attempt, another client restocks between this read and EXEC: a WATCH conflict. */
  @Transactional({ watch: (item: string) => [`stock:${item}`], retries: 3 })
  async reserve(item: string, restocker: Redis): Promise<void> {
    const attempt = ++this.reserveAttempts;
    const stock = Number(await this.redis.client.get(`stock:${item}`));
    if (attempt === 1) await restocker.incrby(`stock:${item}`, 10);
    this.redis.multi.decr(`stock:${item}`);
    publishEvent<Reserved>(this.redis.multi, RESERVED, { item, left: stock - 1, attempt });
  }
}

@Injectable()
class EventInbox extends Inbox<Received> {}

/** The consuming side: a Nest microservice on the Redis transport. */
@Controller()
class OrderEvents {
  constructor(private readonly inbox: EventInbox) {}

  @EventPattern(PLACED)
  placed(@Payload() data: Placed): void {
    this.inbox.add({ pattern: PLACED, data });
  }

  @EventPattern(RESERVED)
  reserved(@Payload() data: Reserved): void {
    this.inbox.add({ pattern: RESERVED, data });
  }
}

describe('PUBLISH on commit, to a Nest microservice on the Redis transport', () => {
  useUnhandledRejections();
  const bed = useRedisServer();
  let app: INestApplication;
  let observer: Redis;
  let baseline: Record<string, number>;
  const orders = () => app.get(Orders);
  const inbox = () => app.get(EventInbox);
  /** Commits one more order and waits for its event: everything published before it has arrived. */
  const receivedThroughMarker = async (id: string) => {
    await orders().place(id, 0);
    return inbox().through((event) => event.pattern === PLACED && event.data.id === id);
  };

  beforeAll(async () => {
    baseline = openHandles();
    observer = new Redis(bed.server.url);
    const moduleRef = await Test.createTestingModule({
      imports: [RedisTxModule.forRoot({ connection: bed.server.url })],
      providers: [Orders, EventInbox],
      controllers: [OrderEvents],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice<MicroserviceOptions>({
      transport: Transport.REDIS,
      options: { host: bed.server.host, port: bed.server.port },
    });
    await app.startAllMicroservices();
    await app.init();
    // The server sends SUBSCRIBE without waiting for its reply: wait until Redis counts both.
    const slack = Slack.start();
    try {
      await eventually(
        async () => {
          const counts = (await observer.pubsub('NUMSUB', PLACED, RESERVED)) as (string | number)[];
          return counts[1] === 1 && counts[3] === 1;
        },
        readinessBound(slack),
        'the microservice subscribed',
      );
    } finally {
      slack.stop();
    }
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
    await expectNoHandlesBeyond(baseline);
  });
  beforeEach(() => observer.flushall());
  afterEach(() => expect(inbox().rest).toEqual([]));

  it('delivers the event of a committed transaction once, shaped { pattern, data }', async () => {
    await orders().place('o1', 25);
    expect(await receivedThroughMarker('marker')).toEqual([
      { pattern: PLACED, data: { id: 'o1', total: 25 } },
      { pattern: PLACED, data: { id: 'marker', total: 0 } },
    ]);
    expect(await observer.hget('order:o1', 'total')).toBe('25');
  });

  it('publishes nothing when the method throws', async () => {
    await expect(orders().placeThenDecline('o2', 25)).rejects.toBeInstanceOf(PaymentDeclined);
    expect(await receivedThroughMarker('marker')).toEqual([
      { pattern: PLACED, data: { id: 'marker', total: 0 } },
    ]);
    expect(await observer.exists('order:o2')).toBe(0);
  });

  it('with watch: the attempt that conflicted publishes nothing, the committed one publishes once', async () => {
    const restocker = new Redis(bed.server.url);
    try {
      await observer.set('stock:apple', 5);
      orders().reserveAttempts = 0;
      await orders().reserve('apple', restocker);
      expect(orders().reserveAttempts).toBe(2);
      expect(await receivedThroughMarker('marker')).toEqual([
        // Read after the restock: 5 + 10 - 1.
        { pattern: RESERVED, data: { item: 'apple', left: 14, attempt: 2 } },
        { pattern: PLACED, data: { id: 'marker', total: 0 } },
      ]);
      expect(await observer.get('stock:apple')).toBe('14');
    } finally {
      await restocker.quit();
    }
  });
});

const STREAM = 'orders:events';
const GROUP = 'billing';

interface Entry {
  id: string;
  fields: Record<string, string>;
}

/** Appends to the stream with RedisTx.run, in the same MULTI as the order itself. */
@Injectable()
class OrderLog {
  attempts = 0;

  constructor(private readonly redis: RedisTx) {}

  place(id: string, total: number, options: { decline?: boolean } = {}) {
    return this.redis.run(() => {
      this.redis.multi
        .hset(`order:${id}`, { total })
        .xadd(STREAM, '*', 'type', PLACED, 'id', id, 'total', String(total));
      if (options.decline) throw new PaymentDeclined(`order ${id}`);
    });
  }

  /** Like Orders.reserve, with RedisTx.run's watch: the first attempt conflicts. */
  reserve(item: string, restocker: Redis) {
    return this.redis.run(
      async () => {
        const attempt = ++this.attempts;
        const stock = Number(await this.redis.client.get(`stock:${item}`));
        if (attempt === 1) await restocker.incrby(`stock:${item}`, 10);
        this.redis.multi.decr(`stock:${item}`);
        // prettier-ignore
        this.redis.multi.xadd(STREAM, '*', 'type', RESERVED, 'item', item, 'left', String(stock - 1), 'attempt', String(attempt));
      },
      { watch: [`stock:${item}`], retries: 3 },
    );
  }
}

describe('XADD on commit, read by a consumer group', () => {
  useUnhandledRejections();
  const bed = useRedisServer();
  let producer: INestApplication;
  let observer: Redis;
  const log = () => producer.get(OrderLog);

  beforeAll(async () => {
    observer = new Redis(bed.server.url);
    producer = await createTestApp({
      options: { connection: bed.server.url },
      providers: [OrderLog],
    });
  });
  /** Consumer apps still running; closed after each test, even one that failed or timed out. */
  const consumers = new Set<INestApplication>();
  const stopConsumer = async (consumer: INestApplication) => {
    consumers.delete(consumer);
    await consumer.close();
  };
  let slack: Slack;
  beforeEach(() => {
    slack = Slack.start();
  });
  afterEach(async () => {
    slack.stop();
    await Promise.all([...consumers].map(stopConsumer));
  });
  bed.beforeStop(async () => {
    await Promise.all([...consumers].map(stopConsumer));
    await producer?.close();
    await observer?.quit();
  });
  beforeEach(() => observer.flushall());

  /** A separate app that only consumes: started, it reads; closed, it is down. */
  async function startConsumer(
    received: Inbox<Entry>,
    options: { handlerFails?: boolean } = {},
  ): Promise<INestApplication> {
    const config: StreamConsumerConfig = {
      stream: STREAM,
      group: GROUP,
      consumer: 'billing-1',
      handle: (id, fields) => {
        received.add({ id, fields });
        if (options.handlerFails) throw new Error('billing is down');
      },
    };
    const moduleRef = await Test.createTestingModule({
      imports: [RedisTxModule.forRoot({ connection: bed.server.url })],
      providers: [StreamConsumer, { provide: STREAM_CONSUMER_CONFIG, useValue: config }],
    }).compile();
    const consumer = moduleRef.createNestApplication({ logger: false });
    consumers.add(consumer);
    return consumer.init();
  }

  /** Waits until the group has acknowledged everything it was given. */
  async function allAcknowledged(): Promise<void> {
    await eventually(
      async () => (await observer.xpending(STREAM, GROUP))[0] === 0,
      readinessBound(slack),
      'every entry acknowledged',
    );
  }

  it('adds nothing when the transaction rolls back, and one entry, read once, when it commits', async () => {
    const baseline = openHandles();
    const received = new Inbox<Entry>();
    const consumer = await startConsumer(received);
    await expect(log().place('o1', 10, { decline: true })).rejects.toBeInstanceOf(PaymentDeclined);
    expect(await observer.xlen(STREAM)).toBe(0);

    const { replies } = await log().place('o2', 20);
    const id = replies![1] as string;
    expect(await observer.xrange(STREAM, '-', '+')).toEqual([
      [id, ['type', PLACED, 'id', 'o2', 'total', '20']],
    ]);
    await log().place('marker', 0);
    expect(await received.through((entry) => entry.fields.id === 'marker')).toEqual([
      { id, fields: { type: PLACED, id: 'o2', total: '20' } },
      { id: expect.any(String), fields: { type: PLACED, id: 'marker', total: '0' } },
    ]);
    await allAcknowledged();
    await stopConsumer(consumer);
    expect(received.rest).toEqual([]);
    // The consumer's loop and its connection are gone with the app.
    await expectNoHandlesBeyond(baseline);
  });

  it('with watch: only the committed attempt adds an entry', async () => {
    const restocker = new Redis(bed.server.url);
    try {
      await observer.set('stock:pear', 5);
      log().attempts = 0;
      const { attempts } = await log().reserve('pear', restocker);
      expect(attempts).toBe(2);
      const entries = await observer.xrange(STREAM, '-', '+');
      expect(entries.map(([, fields]) => fields)).toEqual([
        // Read after the restock: 5 + 10 - 1.
        ['type', RESERVED, 'item', 'pear', 'left', '14', 'attempt', '2'],
      ]);
    } finally {
      await restocker.quit();
    }
  });

  it('keeps what was committed while the consumer was down, and hands it over when it is back', async () => {
    const received = new Inbox<Entry>();
    // The first start creates the group; then the consumer is down.
    await stopConsumer(await startConsumer(received));
    await log().place('o3', 30);
    expect(await observer.xlen(STREAM)).toBe(1);

    await startConsumer(received);
    expect(await received.through((entry) => entry.fields.id === 'o3')).toEqual([
      { id: expect.any(String), fields: { type: PLACED, id: 'o3', total: '30' } },
    ]);
    await allAcknowledged();
  });

  it('hands an entry that was read but not acknowledged to the consumer again after a restart', async () => {
    const received = new Inbox<Entry>();
    const failing = await startConsumer(received, { handlerFails: true });
    await log().place('o5', 50);
    const [first] = await received.through((entry) => entry.fields.id === 'o5');
    await stopConsumer(failing);
    expect((await observer.xpending(STREAM, GROUP))[0]).toBe(1);

    await startConsumer(received);
    expect(await received.through((entry) => entry.fields.id === 'o5')).toEqual([first]);
    await allAcknowledged();
  });
});

describe('publishing on commit on Redis Cluster', () => {
  useUnhandledRejections();
  const bed = useRedisCluster({ masters: 3, replicasPerMaster: 0 });
  let app: INestApplication;
  let observer: Cluster;

  @Injectable()
  class ClusterOrders {
    constructor(readonly redis: RedisTx) {}

    /** The data key and the stream share the hash tag {order:<id>}: one slot. */
    @Transactional()
    async place(id: string) {
      this.redis.multi
        .hset(`{order:${id}}`, { total: 1 })
        .xadd(`{order:${id}}:events`, '*', 'type', PLACED)
        .publish(PLACED, id)
        .spublish(`{order:${id}}:updates`, PLACED);
    }

    /** The stream is keyed, and lives in another slot than the order. */
    @Transactional()
    async placeOnSharedStream(id: string) {
      this.redis.multi.hset(`{order:${id}}`, { total: 1 }).xadd(STREAM, '*', 'id', id);
    }

    /** SPUBLISH's shard channel is keyed like a key. */
    @Transactional()
    async placeWithShardChannelElsewhere(id: string) {
      this.redis.multi.hset(`{order:${id}}`, { total: 1 }).spublish('orders:updates', id);
    }
  }

  beforeAll(async () => {
    observer = new Cluster(bed.cluster.startupNodes, { lazyConnect: true });
    await observer.connect();
    app = await createTestApp({
      options: { connection: { cluster: bed.cluster.startupNodes } },
      providers: [ClusterOrders],
    });
  });
  bed.beforeStop(async () => {
    await app?.close();
    await observer?.quit();
  });

  it('PUBLISH has no key: it joins any slot’s MULTI and reaches subscribers on every node', async () => {
    const owner = await bed.cluster.masterForKey('{order:1}');
    const elsewhere = bed.cluster.nodes.find((node) => node.port !== owner.port)!;
    const subscriber = new Redis(elsewhere.port, elsewhere.host);
    const shardSubscriber = new Redis(owner.port, owner.host);
    try {
      const messages = new Inbox<string>();
      const shardMessages = new Inbox<string>();
      subscriber.on('message', (_channel: string, message: string) => messages.add(message));
      shardSubscriber.on('smessage', (_channel: string, message: string) =>
        shardMessages.add(message),
      );
      await subscriber.subscribe(PLACED);
      await shardSubscriber.ssubscribe('{order:1}:updates');

      await app.get(ClusterOrders).place('1');
      expect(await messages.through(() => true)).toEqual(['1']);
      expect(await shardMessages.through(() => true)).toEqual([PLACED]);
      expect(await observer.xlen('{order:1}:events')).toBe(1);
    } finally {
      await subscriber.quit();
      await shardSubscriber.quit();
    }
  });

  it('refuses, before sending anything, an XADD or SPUBLISH outside the data’s slot', async () => {
    await expect(app.get(ClusterOrders).placeOnSharedStream('2')).rejects.toBeInstanceOf(
      TransactionCrossSlotError,
    );
    await expect(app.get(ClusterOrders).placeWithShardChannelElsewhere('3')).rejects.toBeInstanceOf(
      TransactionCrossSlotError,
    );
    for (const key of ['{order:2}', '{order:3}', STREAM])
      expect(await observer.exists(key)).toBe(0);
  });
});
