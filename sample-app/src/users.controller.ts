import { Controller, Delete, Get, Param, Post } from '@nestjs/common';
import { FollowsService } from './follows.service.js';
import { FollowParams, UserParams } from './users.dto.js';

@Controller('users')
export class UsersController {
  constructor(private readonly follows: FollowsService) {}

  @Post(':user/follows/:target')
  async follow(@Param() { user, target }: FollowParams) {
    await this.follows.follow(user, target);
    return this.follows.of(user);
  }

  @Delete(':user/follows/:target')
  async unfollow(@Param() { user, target }: FollowParams) {
    await this.follows.unfollow(user, target);
    return this.follows.of(user);
  }

  @Get(':user')
  user(@Param() { user }: UserParams) {
    return this.follows.of(user);
  }
}
