import { Body, Controller, Get, NotFoundException, Param, Post, Query } from '@nestjs/common';
import { name, wholeNumber } from './http-input.js';
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
  pay(
    @Param('id') id: string,
    @Body() body: { amount?: unknown },
    @Query('providerMs') providerMs?: string,
  ) {
    return this.orders.pay(
      name(id, 'order id'),
      wholeNumber(body.amount, 'amount', 1, 1_000_000_000),
      providerMs === undefined ? 0 : wholeNumber(providerMs, 'providerMs', 0, 8_000),
    );
  }

  @Get(':id')
  async order(@Param('id') id: string) {
    const order = await this.orders.order(name(id, 'order id'));
    if (!order.status) throw new NotFoundException(`no order ${id}`);
    return order;
  }
}
