import { Injectable } from '@nestjs/common';
import { RedisTx, Transactional } from '../../lib/index.js';

/** Who follows whom, kept from both sides: `u:<user>:follows` and `u:<target>:fans` always mirror each other. */
@Injectable()
export class FollowsService {
  constructor(private readonly redis: RedisTx) {}

  /** Both sets change together or not at all: one MULTI … EXEC, which no other client's commands can interleave. */
  @Transactional()
  async follow(user: string, target: string): Promise<void> {
    this.redis.multi.sadd(`u:${user}:follows`, target).sadd(`u:${target}:fans`, user);
  }

  @Transactional()
  async unfollow(user: string, target: string): Promise<void> {
    this.redis.multi.srem(`u:${user}:follows`, target).srem(`u:${target}:fans`, user);
  }

  async of(user: string): Promise<{ follows: string[]; fans: string[] }> {
    const [follows, fans] = await Promise.all([
      this.redis.client.smembers(`u:${user}:follows`),
      this.redis.client.smembers(`u:${user}:fans`),
    ]);
    return { follows: follows.sort(), fans: fans.sort() };
  }
}
