/** DI token of CronTicksModule's resolved options (a string, as the module's other tokens). */
export const CRON_TICKS_OPTIONS = 'nestjs-redis-tx:cron-ticks-options';
