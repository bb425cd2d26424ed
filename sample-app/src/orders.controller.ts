import { Body, Controller, Get, NotFoundException, Param, Post, Query } from '@nestjs/common';
import { OrderParams, PayDto, PayQuery } from './orders.dto.js';
import { OrdersService } from './orders.service.js';

@Controller('orders')
export class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  /**
   * 201 with the payment; 409 while another payment of the order runs (on
   * any instance) or once it is paid. `?providerMs=` makes the payment take
   * that long, to see the 409 by hand.
   */
  @Post(':id/pay')
  pay(@Param() { id }: OrderParams, @Body() { amount }: PayDto, @Query() query: PayQuery) {
    return this.orders.pay(id, amount, query.providerMs ?? 0);
  }

  @Get(':id')
  async order(@Param() { id }: OrderParams) {
    const order = await this.orders.order(id);
    if (!order) throw new NotFoundException(`no order ${id}`);
    return order;
  }
}
