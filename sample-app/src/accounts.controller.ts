import { Body, Controller, Get, Post } from '@nestjs/common';
import { OpenAccountDto, TransferDto } from './accounts.dto.js';
import { AccountsService } from './accounts.service.js';

@Controller()
export class AccountsController {
  constructor(private readonly accounts: AccountsService) {}

  @Post('accounts')
  async open(@Body() { id, balance }: OpenAccountDto) {
    await this.accounts.open(id, balance);
    return { opened: id };
  }

  @Get('accounts')
  balances() {
    return this.accounts.balances();
  }

  /** 201 when moved, 400 on an overdraft (nothing moved), 404 for an unknown account, 409 when conflicts outlast the retries. */
  @Post('transfers')
  async transfer(@Body() { from, to, amount }: TransferDto) {
    await this.accounts.transfer(from, to, amount);
    return { transferred: amount };
  }
}
