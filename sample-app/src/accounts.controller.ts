import { Body, Controller, Get, Post } from '@nestjs/common';
import { AccountsService } from './accounts.service.js';
import { name, wholeNumber } from './http-input.js';

const MAX_AMOUNT = 1_000_000_000;

@Controller()
export class AccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Post('accounts')
  async open(@Body() body: { id?: unknown; balance?: unknown }) {
    const id = name(body.id, 'id');
    await this.accounts.open(id, wholeNumber(body.balance, 'balance', 0, MAX_AMOUNT));
    return { opened: id };
  }

  @Get('accounts')
  balances() {
    return this.accounts.balances();
  }

  /** 201 when moved, 400 on an overdraft (nothing moved), 404 for an unknown account, 409 when conflicts outlast the retries. */
  @Post('transfers')
  async transfer(@Body() body: { from?: unknown; to?: unknown; amount?: unknown }) {
    const amount = wholeNumber(body.amount, 'amount', 1, MAX_AMOUNT);
    await this.accounts.transfer(name(body.from, 'from'), name(body.to, 'to'), amount);
    return { transferred: amount };
  }
}
