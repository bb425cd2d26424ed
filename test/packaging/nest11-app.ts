/*
 * An HTTP application on NestJS 11 (CommonJS, as `nest new` makes it) that
 * uses the packed library, written out into a temp dir by nest11.spec.ts,
 * where NestJS 11 is installed from the registry. It runs two instances of
 * itself on one Redis and prints what their answers were.
 */

export const nest11Source = `
import 'reflect-metadata';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BadRequestException,
  Body,
  Controller,
  Injectable,
  Module,
  Param,
  Post,
  type INestApplication,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Locked, RedisTx, RedisTxModule, Transactional } from 'nestjs-redis-tx';

const url = process.argv[2]!;

interface Transfer {
  from: string;
  to: string;
  amount: number;
}

// The job handler holds its lock until the driver has asked the other instance.
let signalEntered: () => void = () => undefined;
const entered = new Promise<void>((resolve) => (signalEntered = resolve));
let openGate: () => void = () => undefined;
const gate = new Promise<void>((resolve) => (openGate = resolve));

@Injectable()
class Accounts {
  constructor(private readonly redis: RedisTx) {}

  @Transactional({ watch: (from: string, to: string) => [\`acct:\${from}\`, \`acct:\${to}\`], retries: 100 })
  async transfer(from: string, to: string, amount: number): Promise<void> {
    const [balance] = await this.redis.client.mget(\`acct:\${from}\`);
    if (Number(balance) < amount) throw new BadRequestException(\`\${from} has too little\`);
    this.redis.multi.decrby(\`acct:\${from}\`, amount).incrby(\`acct:\${to}\`, amount);
  }
}

@Controller()
class BankController {
  constructor(private readonly accounts: Accounts) {}

  @Post('transfers')
  async transfer(@Body() body: Transfer): Promise<{ done: boolean }> {
    await this.accounts.transfer(body.from, body.to, body.amount);
    return { done: true };
  }

  @Post('jobs/:id')
  @Locked((id: string) => \`job:\${id}\`, { waitMs: 0 })
  async job(@Param('id') id: string): Promise<{ id: string }> {
    signalEntered();
    await gate;
    return { id };
  }
}

@Module({
  imports: [RedisTxModule.forRoot({ connection: url })],
  providers: [Accounts],
  controllers: [BankController],
})
class AppModule {}

/** POSTs JSON on a fresh connection, so nothing is kept alive after the apps close. */
function post(port: number, path: string, body: unknown = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.setHeader('content-type', 'application/json');
    req.end(JSON.stringify(body));
  });
}

async function boot(): Promise<{ app: INestApplication; port: number }> {
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  return { app, port: (app.getHttpServer().address() as AddressInfo).port };
}

async function main(): Promise<void> {
  const one = await boot();
  const two = await boot();
  try {
    const transfers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        post(i % 2 ? one.port : two.port, '/transfers', { from: 'alice', to: 'bob', amount: 1 }),
      ),
    );
    const holding = post(one.port, '/jobs/7');
    await entered;
    const whileHeld = await post(two.port, '/jobs/7');
    openGate();
    const holder = await holding;
    const afterRelease = await post(two.port, '/jobs/7');
    const report = { transfers: transfers.sort(), whileHeld, holder, afterRelease };
    console.log('nest11 ' + JSON.stringify(report));
  } finally {
    await one.app.close();
    await two.app.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
`;
