import {
  BadRequestException,
  ConflictException,
  Injectable,
  NotFoundException,
} from '@nestjs/common';
import { RedisTx, Transactional } from '../../lib/index.js';
import { publishEvent } from './nest-event.js';
import { TRANSFER_COMPLETED, type TransferCompleted } from './transfer-events.js';

@Injectable()
export class AccountsService {
  constructor(private readonly redis: RedisTx) {}

  /** Refuses to open an account twice, so an opening cannot reset a balance. */
  @Transactional({ watch: (id: string) => [`acct:${id}`] })
  async open(id: string, balance: number): Promise<void> {
    if (await this.redis.client.exists(`acct:${id}`)) {
      throw new ConflictException(`account ${id} already exists`);
    }
    this.redis.multi.set(`acct:${id}`, balance).sadd('accounts', id);
  }

  /**
   * Reads both balances on the watched connection; a change to either by
   * anyone else before EXEC (another request, another instance) runs the
   * whole method again, so the check always holds for the balance written.
   */
  @Transactional({
    watch: (from: string, to: string) => [`acct:${from}`, `acct:${to}`],
    retries: 10,
  })
  async transfer(from: string, to: string, amount: number): Promise<void> {
    if (from === to) throw new BadRequestException('from and to must be different accounts');
    const [balance, target] = await this.redis.client.mget(`acct:${from}`, `acct:${to}`);
    if (balance === null) throw new NotFoundException(`no account ${from}`);
    if (target === null) throw new NotFoundException(`no account ${to}`);
    if (Number(balance) < amount) {
      throw new BadRequestException(`account ${from} has ${balance}, less than ${amount}`);
    }
    this.redis.multi.decrby(`acct:${from}`, amount).incrby(`acct:${to}`, amount);
    // In the same MULTI: published once if the transfer commits, never by an attempt that conflicted.
    publishEvent<TransferCompleted>(this.redis.multi, TRANSFER_COMPLETED, { from, to, amount });
  }

  async balances(): Promise<Record<string, number>> {
    const ids = (await this.redis.client.smembers('accounts')).sort();
    const values = ids.length ? await this.redis.client.mget(ids.map((id) => `acct:${id}`)) : [];
    return Object.fromEntries(ids.map((id, i) => [id, Number(values[i])]));
  }
}
