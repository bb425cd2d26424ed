import { Inject } from '@nestjs/common';
import { REDIS_CLIENT } from './redis-tx.constants.js';

/** Injects the module's shared ioredis client (`Redis` or `Cluster`). */
export const InjectRedis = (): PropertyDecorator & ParameterDecorator => Inject(REDIS_CLIENT);
