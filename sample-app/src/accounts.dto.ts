import { IsName, IsWholeNumber } from './http-input.js';

/** The most an account may hold or move at once. */
export const MAX_AMOUNT = 1_000_000_000;

/** `POST /accounts`. */
export class OpenAccountDto {
  @IsName()
  id!: string;

  @IsWholeNumber(0, MAX_AMOUNT)
  balance!: number;
}

/** `POST /transfers`. */
export class TransferDto {
  @IsName()
  from!: string;

  @IsName()
  to!: string;

  @IsWholeNumber(1, MAX_AMOUNT)
  amount!: number;
}
