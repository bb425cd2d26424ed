import { Module, type DynamicModule } from '@nestjs/common';
import { RedisTxModule } from '../../lib/index.js';
import { AccountsService } from './accounts.service.js';
import { AppController } from './app.controller.js';
import { FollowsService } from './follows.service.js';
import { OrdersService } from './orders.service.js';

@Module({})
export class AppModule {
  static forRedis(url: string): DynamicModule {
    return {
      module: AppModule,
      imports: [RedisTxModule.forRoot({ connection: url })],
      controllers: [AppController],
      providers: [AccountsService, FollowsService, OrdersService],
    };
  }
}
