import { hostname } from 'node:os';
import { Module, ValidationPipe, type DynamicModule } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { ScheduleModule } from '@nestjs/schedule';
import { TerminusModule } from '@nestjs/terminus';
import { CronTicksModule, RedisTxModule } from '../../lib/index.js';
import { RedisTxHealthModule } from '../../lib/terminus/index.js';
import { AccountsController } from './accounts.controller.js';
import { AccountsService } from './accounts.service.js';
import { fencingScripts } from './fencing.scripts.js';
import { FollowsService } from './follows.service.js';
import { HealthController } from './health.controller.js';
import { inputPipeOptions } from './http-input.js';
import { INSTANCE_ID } from './instance-id.js';
import { LockAdminController } from './lock-admin.controller.js';
import { OrdersController } from './orders.controller.js';
import { OrdersService } from './orders.service.js';
import { ReportService } from './report.service.js';
import { UsersController } from './users.controller.js';

export interface SampleAppOptions {
  /** Written next to what this instance does (payments, report runs). Defaults to `<hostname>:<pid>`. */
  instanceId?: string;
}

@Module({})
export class AppModule {
  static forRedis(url: string, options: SampleAppOptions = {}): DynamicModule {
    const instanceId = options.instanceId ?? `${hostname()}:${process.pid}`;
    return {
      module: AppModule,
      imports: [
        RedisTxModule.forRoot({ connection: url, scripts: fencingScripts }),
        ScheduleModule.forRoot(),
        CronTicksModule.forRoot({ instanceId }),
        TerminusModule,
        RedisTxHealthModule,
      ],
      controllers: [
        HealthController,
        AccountsController,
        OrdersController,
        UsersController,
        LockAdminController,
      ],
      providers: [
        { provide: APP_PIPE, useFactory: () => new ValidationPipe(inputPipeOptions) },
        { provide: INSTANCE_ID, useValue: instanceId },
        AccountsService,
        FollowsService,
        OrdersService,
        ReportService,
      ],
    };
  }
}
