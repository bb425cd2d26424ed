import { Injectable } from '@nestjs/common';
import { RedisTx, Transactional } from '../../lib/index.js';

export class InsufficientFunds extends Error {}

@Injectable()
export class AccountsService {
  constructor(private readonly redis: RedisTx) {}

  @Transactional()
  async open(id: string, balance: number): Promise<void> {
    this.redis.multi.set(`acct:${id}`, balance).sadd('accounts', id);
  }

  /** Reads both balances on the watched connection; a concurrent change re-runs the whole method. */
  @Transactional({
    watch: (from: string, to: string) => [`acct:${from}`, `acct:${to}`],
    retries: 10,
  })
  async transfer(from: string, to: string, amount: number): Promise<void> {
    const [balance] = await this.redis.client.mget(`acct:${from}`);
    if (Number(balance) < amount) throw new InsufficientFunds(`${from} has ${balance ?? 0}`);
    this.redis.multi.decrby(`acct:${from}`, amount).incrby(`acct:${to}`, amount);
  }

  async balances(): Promise<Record<string, number>> {
    const ids = await this.redis.client.smembers('accounts');
    const values = ids.length ? await this.redis.client.mget(ids.map((id) => `acct:${id}`)) : [];
    return Object.fromEntries(ids.map((id, i) => [id, Number(values[i])]));
  }
}
