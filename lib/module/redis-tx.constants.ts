// Tokens are strings, not Symbol() or objects, so that they read well in DI
// errors and are equal whichever build of the package (ES module or
// CommonJS) defines them.

/** DI token of the module's ioredis client (the shared connection): `@Inject(REDIS_CLIENT)` or `@InjectRedis()`. */
export const REDIS_CLIENT = 'nestjs-redis-tx:client';

/** DI token of the validated module options. */
export const REDIS_TX_OPTIONS = 'nestjs-redis-tx:options';
