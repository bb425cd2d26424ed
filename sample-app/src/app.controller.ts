import { BadRequestException, Body, Controller, Get, Param, Post } from '@nestjs/common';
import { AccountsService, InsufficientFunds } from './accounts.service.js';
import { FollowsService } from './follows.service.js';
import { OrdersService } from './orders.service.js';

@Controller()
export class AppController {
  constructor(
    private readonly accounts: AccountsService,
    private readonly follows: FollowsService,
    private readonly orders: OrdersService,
  ) {}

  @Get('health')
  health() {
    return { status: 'ok' };
  }

  @Post('accounts')
  async open(@Body() body: { id: string; balance: number }) {
    await this.accounts.open(body.id, body.balance);
    return { opened: body.id };
  }

  @Get('accounts')
  balances() {
    return this.accounts.balances();
  }

  @Post('transfers')
  async transfer(@Body() body: { from: string; to: string; amount: number }) {
    try {
      await this.accounts.transfer(body.from, body.to, body.amount);
    } catch (error) {
      if (error instanceof InsufficientFunds) throw new BadRequestException(error.message);
      throw error;
    }
    return { transferred: body.amount };
  }

  @Post('orders/:id/pay')
  pay(@Param('id') id: string, @Body() body: { amount: number }) {
    return this.orders.pay(id, body.amount);
  }

  @Post('users/:user/follows/:target')
  async follow(@Param('user') user: string, @Param('target') target: string) {
    await this.follows.follow(user, target);
    return this.follows.of(user);
  }

  @Get('users/:user')
  user(@Param('user') user: string) {
    return this.follows.of(user);
  }
}
