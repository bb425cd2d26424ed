import { once } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { FaultProxy } from '../tools/fault-proxy.js';
import { useFaultProxy } from './support/fault-proxy.js';
import { useRedisServer } from './support/redis.js';

/** Encodes one command as a RESP array of bulk strings. */
function resp(...parts: (string | Buffer)[]): Buffer {
  const pieces: Buffer[] = [Buffer.from(`*${parts.length}\r\n`)];
  for (const part of parts) {
    const bytes = Buffer.from(part);
    pieces.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(pieces);
}

/** A raw socket to `port` that records every byte it receives and whether it closed. */
async function rawClient(
  port: number,
): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<void> }> {
  const socket = createConnection({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  // 'close' follows 'error' too, so this settles however the socket goes.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/**
 * Polls `condition` until it holds or `timeoutMs` passes. Only where no event
 * exists: the proxy emits none when a socket closes, and Redis none when it
 * has run what a cut connection sent.
 */
async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 2000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

/** How many handles of each kind (TCPSocketWrap, Timeout, …) keep the process alive. */
function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo())
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

// First in the file, so that no other test's sockets and timers are still winding down.
describe('FaultProxy.stop', () => {
  const redis = useRedisServer();

  it('closes every connection, leaves no timer or socket behind, and rejects faults that never fired', async () => {
    const before = activeResources();
    const proxy = await FaultProxy.start(redis.server);
    const raw = await rawClient(proxy.port);
    const neverSent = proxy.faultOn('EXEC', 'cut-before');
    proxy.delay(10_000);
    raw.socket.write(resp('PING'));
    await eventually(() => proxy.connections === 1);

    await Promise.all([proxy.stop(), raw.closed]);
    await proxy.stop();
    await expect(neverSent).rejects.toThrow(/stopped before any client sent EXEC/);
    expect(raw.received()).toHaveLength(0);
    const after = activeResources();
    for (const [kind, count] of after)
      expect([kind, count]).toEqual([kind, Math.min(count, before.get(kind) ?? 0)]);
    await expect(rawClient(proxy.port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('FaultProxy when its target dies', () => {
  const redis = useRedisServer();

  it('closes the client connection too, after the bytes queued for it', async () => {
    const proxy = await FaultProxy.start(redis.server);
    const raw = await rawClient(proxy.port);
    try {
      raw.socket.write(resp('PING'));
      await eventually(() => raw.received().length > 0);
      proxy.delay(100);
      await redis.server.kill();
      await raw.closed;
      expect(raw.received().toString()).toBe('+PONG\r\n');
      await eventually(() => proxy.connections === 0);
    } finally {
      raw.socket.destroy();
      await proxy.stop();
    }
  });
});

describe('FaultProxy', () => {
  const redis = useRedisServer();
  const bed = useFaultProxy(() => redis.server);
  let direct: Redis;
  const clients: Redis[] = [];

  /** A client through the proxy that never reconnects or resends, closed after the block. */
  function proxied(options: RedisOptions = {}): Redis {
    const client = new Redis({
      host: bed.proxy.host,
      port: bed.proxy.port,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      ...options,
    });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  }

  /** Resolves when the proxy next sees a client send `command`. */
  function nextCommand(command: string): Promise<void> {
    return new Promise((resolve) => {
      const off = bed.proxy.onCommand((name) => {
        if (name === command) {
          off();
          resolve();
        }
      });
    });
  }

  beforeAll(() => {
    direct = new Redis(redis.server.url);
  });
  afterEach(() => {
    // Not on an ended client: ioredis would arm a timer waiting for a 'close' that already came.
    for (const client of clients.splice(0)) if (client.status !== 'end') client.disconnect();
  });
  beforeEach(() => direct.flushall());
  redis.beforeStop(() => direct.quit());

  it('forwards both ways in pass mode and counts open client connections', async () => {
    expect(bed.proxy.url).toBe(`redis://127.0.0.1:${bed.proxy.port}`);
    expect(bed.proxy.port).not.toBe(redis.server.port);
    const before = bed.proxy.connections;
    const client = proxied();
    await client.set('through', 'proxy');
    expect(await direct.get('through')).toBe('proxy');
    expect(await client.get('through')).toBe('proxy');
    expect(bed.proxy.connections).toBe(before + 1);
    await client.quit();
    await eventually(() => bed.proxy.connections === before);
  });

  it('blackhole: keeps the connection open but forwards nothing, so commands time out', async () => {
    const client = proxied({ commandTimeout: 200 });
    expect(await client.ping()).toBe('PONG');
    const open = bed.proxy.connections;
    bed.proxy.blackhole();
    await expect(client.ping()).rejects.toThrow(/timed out/i);
    expect(bed.proxy.connections).toBe(open);
    bed.proxy.pass();
    expect(await proxied().ping()).toBe('PONG');
  });

  it('blackhole drops bytes rather than holding them: after pass() only new commands arrive', async () => {
    const raw = await rawClient(bed.proxy.port);
    try {
      const arrived = nextCommand('SET');
      bed.proxy.blackhole();
      raw.socket.write(resp('SET', 'swallowed', '1'));
      await arrived;
      bed.proxy.pass();
      raw.socket.write(resp('PING'));
      await eventually(() => raw.received().length >= '+PONG\r\n'.length);
      // A held-back SET would have answered +OK first.
      expect(raw.received().toString()).toBe('+PONG\r\n');
      expect(await direct.exists('swallowed')).toBe(0);
    } finally {
      raw.socket.destroy();
    }
  });

  it('dropReplies: the server applies the command but the client never hears back', async () => {
    const client = proxied({ commandTimeout: 300 });
    await client.ping();
    bed.proxy.dropReplies();
    await expect(client.set('applied', 'silently')).rejects.toThrow(/timed out/i);
    expect(await direct.get('applied')).toBe('silently');
  });

  it('delay: delays each direction by at least the given time and keeps the order', async () => {
    const client = proxied();
    await client.ping();
    bed.proxy.delay(150);
    const started = performance.now();
    expect(await client.ping()).toBe('PONG');
    // 150 ms to the server and 150 ms back.
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);

    const replies = await Promise.all(Array.from({ length: 20 }, () => client.incr('counter')));
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));

    // A chunk sent under a long delay is not overtaken by one sent after the delay is lifted.
    const seenFirst = nextCommand('SET');
    bed.proxy.delay(400);
    const first = client.set('order', 'first');
    await seenFirst;
    bed.proxy.pass();
    const second = client.set('order', 'second');
    await Promise.all([first, second]);
    expect(await direct.get('order')).toBe('second');
  });

  it('onCommand names every command, inline or RESP, split across chunks or sharing one', async () => {
    const seen: [string, number][] = [];
    const off = bed.proxy.onCommand((name, connectionId) => seen.push([name, connectionId]));
    const raw = await rawClient(bed.proxy.port);
    try {
      const value = Buffer.from([0x00, 0x0d, 0x0a, 0x2a, 0x33, 0xff, 0x24]);
      const stream = Buffer.concat([
        Buffer.from('ping\r\n'),
        resp('set', 'binary', value),
        resp('GET', 'binary'),
      ]);
      // One byte at a time, then all at once: the boundaries must not matter.
      for (const byte of stream) {
        raw.socket.write(Buffer.from([byte]));
        await sleep(0);
      }
      raw.socket.write(stream);
      await eventually(() => seen.length === 6);
      expect(seen.map(([name]) => name)).toEqual(['PING', 'SET', 'GET', 'PING', 'SET', 'GET']);
      expect(new Set(seen.map(([, id]) => id)).size).toBe(1);
      expect(await direct.getBuffer('binary')).toEqual(value);

      off();
      await proxied().ping();
      expect(seen).toHaveLength(6);
    } finally {
      raw.socket.destroy();
    }
  });

  it("faultOn('EXEC', 'cut-before') cuts the connection and leaves the transaction unapplied", async () => {
    const client = proxied();
    await client.ping();
    const cut = bed.proxy.faultOn('exec', 'cut-before');
    await expect(client.multi().set('tx:a', '1').set('tx:b', '2').exec()).rejects.toThrow(
      /Connection is closed/,
    );
    await cut;
    expect(await direct.exists('tx:a', 'tx:b')).toBe(0);
  });

  it("faultOn('EXEC', 'cut-after-send') applies the transaction while the client sees a closed connection", async () => {
    const client = proxied();
    await client.ping();
    const cut = bed.proxy.faultOn('EXEC', 'cut-after-send');
    await expect(client.multi().set('tx:a', '1').set('tx:b', '2').exec()).rejects.toThrow(
      /Connection is closed/,
    );
    await cut;
    await eventually(async () => (await direct.exists('tx:a')) === 1);
    expect(await direct.mget('tx:a', 'tx:b')).toEqual(['1', '2']);
  });

  it('cut faults forward exactly the commands before (or including) the faulted one in a shared chunk', async () => {
    const chunk = (): Buffer =>
      Buffer.concat([
        resp('SET', 'before', '1'),
        resp('MULTI'),
        resp('SET', 'inside', '1'),
        resp('EXEC'),
        resp('SET', 'after', '1'),
      ]);

    const first = await rawClient(bed.proxy.port);
    const cutBefore = bed.proxy.faultOn('EXEC', 'cut-before');
    first.socket.write(chunk());
    await Promise.all([cutBefore, first.closed]);
    // The cut happens while the chunk is read, before Redis can answer anything.
    expect(first.received()).toHaveLength(0);
    await eventually(async () => (await direct.exists('before')) === 1);
    expect(await direct.mget('before', 'inside', 'after')).toEqual(['1', null, null]);

    await direct.flushall();
    const second = await rawClient(bed.proxy.port);
    const cutAfterSend = bed.proxy.faultOn('EXEC', 'cut-after-send');
    second.socket.write(chunk());
    await Promise.all([cutAfterSend, second.closed]);
    expect(second.received()).toHaveLength(0);
    await eventually(async () => (await direct.exists('inside')) === 1);
    expect(await direct.mget('before', 'inside', 'after')).toEqual(['1', '1', null]);
  });

  it("faultOn('EXEC', 'drop-reply') applies the transaction and keeps the client's socket open without a reply", async () => {
    const client = proxied({ commandTimeout: 300 });
    await client.ping();
    const open = bed.proxy.connections;
    const dropped = bed.proxy.faultOn('EXEC', 'drop-reply');
    await expect(client.multi().set('tx:a', '1').exec()).rejects.toThrow(/timed out/i);
    await dropped;
    expect(await direct.get('tx:a')).toBe('1');
    expect(client.status).toBe('ready');
    expect(bed.proxy.connections).toBe(open);
  });

  it('cutAfter(n) lets n commands through, counted over all connections, then cuts them all', async () => {
    const one = proxied();
    const other = proxied();
    await Promise.all([one.ping(), other.ping()]);
    const oneClosed = once(one, 'end');
    bed.proxy.cutAfter(2);
    await one.set('first', '1');
    await other.set('second', '2');
    await expect(one.set('third', '3')).rejects.toThrow(/Connection is closed/);
    await oneClosed;
    await eventually(() => other.status === 'end');
    expect(await direct.mget('first', 'second', 'third')).toEqual(['1', '2', null]);
  });

  it('cutAll cuts every connection; clients reconnect through the proxy', async () => {
    const reconnecting = [1, 2].map(() => {
      const client = new Redis({
        host: bed.proxy.host,
        port: bed.proxy.port,
        retryStrategy: () => 20,
      });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    });
    await Promise.all(reconnecting.map((client) => client.ping()));
    const reconnected = reconnecting.map((client) => once(client, 'reconnecting'));
    bed.proxy.cutAll();
    await Promise.all(reconnected);
    expect(await Promise.all(reconnecting.map((client) => client.ping()))).toEqual([
      'PONG',
      'PONG',
    ]);
    expect(bed.proxy.connections).toBe(2);
    for (const client of reconnecting) await client.quit();
  });
});
