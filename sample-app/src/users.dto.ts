import { IsName } from './http-input.js';

/** `/users/:user`. */
export class UserParams {
  @IsName()
  user!: string;
}

/** `/users/:user/follows/:target`. */
export class FollowParams {
  @IsName()
  user!: string;

  @IsName()
  target!: string;
}
