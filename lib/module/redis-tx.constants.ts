/** DI token of the module's ioredis client (the shared connection): `@Inject(REDIS_CLIENT)` or `@InjectRedis()`. */
export const REDIS_CLIENT = 'nestjs-redis-tx:client';

/** DI token of the validated module options. */
export const REDIS_TX_OPTIONS = 'nestjs-redis-tx:options';
