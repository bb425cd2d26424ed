import { Controller, Delete, Get, Param, Post } from '@nestjs/common';
import { FollowsService } from './follows.service.js';
import { name } from './http-input.js';

@Controller('users')
export class UsersController {
  constructor(private readonly follows: FollowsService) {}

  @Post(':user/follows/:target')
  async follow(@Param('user') user: string, @Param('target') target: string) {
    await this.follows.follow(name(user, 'user'), name(target, 'target'));
    return this.follows.of(user);
  }

  @Delete(':user/follows/:target')
  async unfollow(@Param('user') user: string, @Param('target') target: string) {
    await this.follows.unfollow(name(user, 'user'), name(target, 'target'));
    return this.follows.of(user);
  }

  @Get(':user')
  user(@Param('user') user: string) {
    return this.follows.of(name(user, 'user'));
  }
}
