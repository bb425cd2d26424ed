import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { IsString, Matches } from 'class-validator';
import { LockService } from '../../lib/index.js';

/** `/admin/locks/:key`: a lock name as the sample's locks are named (`order:42`, `reports:daily`). */
export class LockKeyParams {
  @IsString()
  @Matches(/^[\w:.-]{1,128}$/, {
    message: 'key must be 1 to 128 letters, digits, ":", ".", "-" or "_"',
  })
  key!: string;
}

/**
 * Operator routes for locks. In a real application, put them behind the
 * same authentication as any other admin action: a forced release lets the
 * evicted holder and the next one overlap until the evicted one notices.
 */
@Controller('admin/locks')
export class LockAdminController {
  constructor(private readonly locks: LockService) {}

  /** 200 with who holds the lock, for how long, and who waits; never a secret token. */
  @Get(':key')
  inspect(@Param() { key }: LockKeyParams) {
    return this.locks.inspect(key);
  }

  /** 200 with how many holders were evicted and the fencing token that now shuts them out. */
  @Post(':key/force-release')
  @HttpCode(200)
  forceRelease(@Param() { key }: LockKeyParams) {
    return this.locks.forceRelease(key);
  }
}
