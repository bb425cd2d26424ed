import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { RedisTxHealthIndicator } from '../../lib/terminus/index.js';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisTxHealthIndicator,
  ) {}

  /** 200 when every Redis connection of the module answers PING within a second, 503 naming those that do not. */
  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.redis.isHealthy('redis')]);
  }
}
