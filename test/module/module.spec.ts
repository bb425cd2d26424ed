import 'reflect-metadata';
import { Inject, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  InjectRedis,
  InvalidOptionsError,
  REDIS_CLIENT,
  RedisTx,
  RedisTxModule,
  ShuttingDownError,
  Transactional,
  UnboundInstanceError,
} from '../../lib/index.js';
import { TxConnection } from '../../lib/connection/tx-connection.js';
import { RedisSentinel } from '../../tools/redis-server.js';
import { useRedisServer } from '../support/redis.js';

@Injectable()
class Counter {
  constructor(
    readonly tx: RedisTx,
    @InjectRedis() readonly redis: Redis,
    @Inject(REDIS_CLIENT) readonly byToken: Redis,
  ) {}

  @Transactional()
  async bump() {
    this.tx.multi.incr('bumps');
  }
}

/** Stands in for ConfigService: forRootAsync reads the URL from another provider. */
@Injectable()
class Settings {
  url = '';
}
@Module({ providers: [Settings], exports: [Settings] })
class SettingsModule {}

async function bootCounter(imports: Parameters<typeof Test.createTestingModule>[0]['imports']) {
  const moduleRef = await Test.createTestingModule({ imports, providers: [Counter] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

describe('RedisTxModule', () => {
  const bed = useRedisServer();
  let observer: Redis;
  beforeAll(() => {
    observer = new Redis(bed.server.url);
  });
  bed.beforeStop(async () => {
    await observer?.quit();
  });
  beforeEach(async () => {
    await observer.flushall();
  });

  const clientNames = async () =>
    String(await observer.client('LIST'))
      .split('\n')
      .filter(Boolean).length;

  it.each([
    ['a URL', () => bed.server.url],
    ['ioredis options', () => ({ host: bed.server.host, port: bed.server.port })],
  ])('connects from %s, injects the client, and closes what it opened', async (_, connection) => {
    const before = await clientNames();
    const app = await bootCounter([RedisTxModule.forRoot({ connection: connection() })]);
    const counter = app.get(Counter);
    expect(counter.redis).toBeInstanceOf(Redis);
    expect(counter.redis).toBe(counter.byToken);
    await counter.bump();
    expect(await observer.get('bumps')).toBe('1');
    await app.close();
    expect(counter.redis.status).toBe('end');
    expect(await clientNames()).toBe(before);
  });

  it('uses an existing client without ever closing it', async () => {
    const mine = new Redis(bed.server.url);
    try {
      const app = await bootCounter([RedisTxModule.forRoot({ connection: mine })]);
      expect(app.get(Counter).redis).toBe(mine);
      await app.get(Counter).bump();
      await app.close();
      expect(mine.status).toBe('ready');
      expect(await mine.get('bumps')).toBe('1');
    } finally {
      await mine.quit();
    }
  });

  it('connects through Sentinel options', async () => {
    const sentinel = await RedisSentinel.start(bed.server);
    try {
      const app = await bootCounter([
        RedisTxModule.forRoot({
          connection: {
            sentinels: [{ host: sentinel.host, port: sentinel.port }],
            name: sentinel.masterName,
          },
        }),
      ]);
      await app.get(Counter).bump();
      expect(await observer.get('bumps')).toBe('1');
      await app.close();
    } finally {
      await sentinel.stop();
    }
  });

  it('forRootAsync builds its options from injected providers', async () => {
    const app = await bootCounter([
      RedisTxModule.forRootAsync({
        imports: [SettingsModule],
        inject: [Settings],
        useFactory: (settings: Settings) => ({ connection: settings.url || bed.server.url }),
      }),
    ]);
    await app.get(Counter).bump();
    expect(await observer.get('bumps')).toBe('1');
    await app.close();
  });

  it('is global by default, and private to its importer with isGlobal: false', async () => {
    @Module({ providers: [Counter], exports: [Counter] })
    class FeatureModule {}

    const globalApp = await Test.createTestingModule({
      imports: [RedisTxModule.forRoot({ connection: bed.server.url }), FeatureModule],
    }).compile();
    expect(globalApp.get(Counter).tx).toBeInstanceOf(RedisTx);
    await globalApp.close();

    await expect(
      Test.createTestingModule({
        imports: [
          RedisTxModule.forRoot({ connection: bed.server.url, isGlobal: false }),
          FeatureModule,
        ],
      }).compile(),
    ).rejects.toThrow(/RedisTx/);
  });

  it.each([
    [{}, 'connection', /option `connection` is required/],
    [{ connection: 'http://localhost' }, 'connection', /redis:\/\//],
    [{ connection: 42 }, 'connection', /got 42/],
    [{ connection: { cluster: [] } }, 'connection.cluster', /non-empty array/],
    [{ connection: 'redis://x', transactions: { retries: -1 } }, 'transactions.retries', /≥ 0/],
    [
      { connection: 'redis://x', transactions: { watchConnections: 1.5 } },
      'transactions.watchConnections',
      /1\.5/,
    ],
    [
      { connection: 'redis://x', scripts: { 'bad-name': { lua: 'return 1' } } },
      'scripts.bad-name',
      /identifier/,
    ],
    [{ connection: 'redis://x', scripts: { ok: { lua: '' } } }, 'scripts.ok.lua', /Lua source/],
    [{ connection: 'redis://x', isGlobal: 'yes' }, 'isGlobal', /true or false/],
  ])('rejects invalid options at bootstrap, naming the option (%j)', (options, option, message) => {
    const error = (() => {
      try {
        RedisTxModule.forRoot(options as never);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).option).toBe(option);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(`\`${option}\``);
  });

  it('rejects invalid async options when the factory resolves', async () => {
    await expect(
      bootCounter([RedisTxModule.forRootAsync({ useFactory: () => ({ connection: 'nope' }) })]),
    ).rejects.toThrow(InvalidOptionsError);
  });

  it('rejects invalid decorator options where the decorator is written', () => {
    expect(() => {
      class Bad {
        @Transactional({ retries: -2 })
        async m() {}
      }
      return Bad;
    }).toThrow(/@Transactional\(\) on Bad\.m: option `retries`/);
  });

  it('throws UnboundInstanceError for a decorated object Nest did not create', async () => {
    const loose = new Counter({} as RedisTx, {} as Redis, {} as Redis);
    await expect(loose.bump()).rejects.toThrow(UnboundInstanceError);
  });

  it('lets many transactions wait for a connection without piling up listeners', async () => {
    const connection = new TxConnection(new Redis(bed.server.url, { lazyConnect: true }), 5_000);
    try {
      const baseline = connection.redis.listenerCount('ready');
      const waits = Array.from({ length: 50 }, () => connection.whenReady(5_000, 'test'));
      const added = connection.redis.listenerCount('ready') - baseline;
      await Promise.all(waits);
      expect(added).toBeLessThanOrEqual(1);
      expect(connection.isReady).toBe(true);
    } finally {
      await connection.close();
    }
  });

  it('refuses work after app.close() instead of opening a connection nobody closes', async () => {
    const app = await bootCounter([RedisTxModule.forRoot({ connection: bed.server.url })]);
    const tx = app.get(RedisTx);
    await app.close();
    for (const options of [{}, { watch: ['late'] }]) {
      const error = await tx
        .run(() => void tx.multi.incr('late'), options)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ShuttingDownError);
      expect((error as Error).message).toMatch(/shutting down|connection is closed/);
    }
    expect(await observer.exists('late')).toBe(0);
  });

  it('leaves no open handle after app.close()', async () => {
    const before = new Set(process.getActiveResourcesInfo());
    const count = (list: string[]) =>
      list.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r]: (acc[r] ?? 0) + 1 }), {});
    const baseline = count(process.getActiveResourcesInfo());
    const app = await bootCounter([RedisTxModule.forRoot({ connection: bed.server.url })]);
    const counter = app.get(Counter);
    await Promise.all([counter.bump(), counter.bump()]);
    await app.get(RedisTx).run(async () => undefined, { watch: ['bumps'] });
    await app.close();
    const after = count(process.getActiveResourcesInfo());
    for (const [kind, n] of Object.entries(after)) {
      expect(`${kind}: ${n}`).toBe(`${kind}: ${Math.min(n, baseline[kind] ?? 0)}`);
    }
    expect(before.size).toBeGreaterThanOrEqual(0);
  });
});
