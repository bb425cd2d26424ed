import 'reflect-metadata';
import { Body, CanActivate, Controller, Injectable, Post, UseGuards } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Redis } from 'ioredis';
import request from 'supertest';
import { RedisTx, Transactional } from '../../lib/index.js';
import { useAppWithRedis } from '../support/app-with-redis.js';

@Injectable()
class DenyHeaderGuard implements CanActivate {
  canActivate(context: Parameters<CanActivate['canActivate']>[0]): boolean {
    return (
      context.switchToHttp().getRequest<{ headers: Record<string, string> }>().headers['x-deny'] !==
      '1'
    );
  }
}

@Controller('accounts')
class AccountsController {
  constructor(private readonly redis: RedisTx) {}

  @Post('open')
  @UseGuards(DenyHeaderGuard)
  @Transactional()
  async open(@Body() body: { id: string; balance: number }) {
    this.redis.multi.set(`acct:${body.id}`, body.balance).sadd('accounts', body.id);
    return { opened: body.id };
  }

  @Transactional({ watch: (body: { from: string }) => [`acct:${body.from}`], retries: 0 })
  @Post('drain')
  async drain(@Body() body: { from: string; racer?: boolean }) {
    await this.redis.client.get(`acct:${body.from}`);
    if (body.racer) await racer.incr(`acct:${body.from}`);
    this.redis.multi.set(`acct:${body.from}`, 0);
    return { drained: body.from };
  }

  @Post('fail')
  @Transactional()
  async fail(@Body() body: { id: string }) {
    this.redis.multi.set(`acct:${body.id}`, 1);
    throw new Error('boom');
  }
}

@Injectable()
class Jobs {
  private markSwept!: () => void;
  readonly swept = new Promise<void>((resolve) => (this.markSwept = resolve));
  constructor(private readonly redis: RedisTx) {}

  @Cron('*/5 * * * *', { name: 'sweep' })
  @Transactional()
  async sweep() {
    this.redis.multi.incr('sweeps');
    this.redis.afterCommit(() => this.markSwept());
  }
}

let racer: Redis;

describe('@Transactional on controller handlers, over HTTP', () => {
  const bed = useAppWithRedis({
    controllers: [AccountsController],
    providers: [Jobs],
    imports: [ScheduleModule.forRoot()],
  });
  beforeAll(() => {
    racer = new Redis(bed.server.url);
  });
  bed.beforeStop(() => racer?.quit());

  it('commits the handler transaction before answering', async () => {
    const res = await request(bed.app.getHttpServer())
      .post('/accounts/open')
      .send({ id: 'a1', balance: 10 });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ opened: 'a1' });
    expect(await bed.observer.get('acct:a1')).toBe('10');
    expect(await bed.observer.smembers('accounts')).toEqual(['a1']);
  });

  it('keeps guards working: a denied request runs nothing', async () => {
    const res = await request(bed.app.getHttpServer())
      .post('/accounts/open')
      .set('x-deny', '1')
      .send({ id: 'a2', balance: 10 });
    expect(res.status).toBe(403);
    expect(await bed.observer.exists('acct:a2')).toBe(0);
  });

  it('passes the handler arguments to the watch function and answers 409 on conflict', async () => {
    await bed.observer.set('acct:b', '5');
    const ok = await request(bed.app.getHttpServer()).post('/accounts/drain').send({ from: 'b' });
    expect(ok.status).toBe(201);
    expect(await bed.observer.get('acct:b')).toBe('0');

    await bed.observer.set('acct:c', '5');
    const res = await request(bed.app.getHttpServer())
      .post('/accounts/drain')
      .send({ from: 'c', racer: true });
    expect(res.status).toBe(409);
    // The client is told what happened, not which method or option: that is for the logs.
    expect(res.body).toEqual({
      statusCode: 409,
      code: 'TRANSACTION_CONFLICT',
      message: 'The data changed while the request ran; try again.',
    });
    expect(await bed.observer.get('acct:c')).toBe('6');
  });

  it('answers 500 and applies nothing when the handler throws', async () => {
    const res = await request(bed.app.getHttpServer()).post('/accounts/fail').send({ id: 'f' });
    expect(res.status).toBe(500);
    expect(await bed.observer.exists('acct:f')).toBe(0);
  });

  it('keeps other decorators\u2019 metadata (route, @Cron) on the wrapped method', async () => {
    const reflector = bed.app.get(Reflector);
    expect(reflector.get('path', AccountsController.prototype.open)).toBe('open');
    // The scheduler found the job through the metadata, and its tick runs the transaction.
    const job = bed.app.get(SchedulerRegistry).getCronJob('sweep');
    void job.fireOnTick();
    await bed.app.get(Jobs).swept;
    expect(await bed.observer.get('sweeps')).toBe('1');
  });
});
