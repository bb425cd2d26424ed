import { IsOptional } from 'class-validator';
import { MAX_AMOUNT } from './accounts.dto.js';
import { IsName, IsWholeNumber, QueryNumber } from './http-input.js';

/** The longest a payment may make its stand-in provider take, under the order lock's 10 s lease. */
export const MAX_PROVIDER_MS = 8_000;

/** `/orders/:id`. */
export class OrderParams {
  @IsName()
  id!: string;
}

/** The body of `POST /orders/:id/pay`. */
export class PayDto {
  @IsWholeNumber(1, MAX_AMOUNT)
  amount!: number;
}

/** The query of `POST /orders/:id/pay`. */
export class PayQuery {
  @IsOptional()
  @QueryNumber()
  @IsWholeNumber(0, MAX_PROVIDER_MS)
  providerMs?: number;
}
