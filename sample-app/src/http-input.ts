import { applyDecorators, type ValidationPipeOptions } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { IsInt, IsString, Matches, Max, Min } from 'class-validator';

/**
 * The options of the pipe every route's input goes through (AppModule
 * provides it as `APP_PIPE`, so the tests' apps get it too): the DTOs'
 * rules, 400 Bad Request with one message per field that broke one, and no
 * fields the DTO does not declare. JSON values keep their types (`"5"` is
 * not a number); query strings are converted only where a DTO says so.
 */
export const inputPipeOptions: ValidationPipeOptions = {
  transform: true,
  whitelist: true,
  forbidNonWhitelisted: true,
  stopAtFirstError: true,
};

/** 1 to 64 letters, digits, `-` and `_`: ids of accounts, orders and users, safe in a Redis key. */
export function IsName(): PropertyDecorator {
  const message = '$property must be 1 to 64 letters, digits, "-" or "_"';
  return applyDecorators(IsString({ message }), Matches(/^[\w-]{1,64}$/, { message }));
}

/** A whole number within [min, max]. */
export function IsWholeNumber(min: number, max: number): PropertyDecorator {
  const message = `$property must be a whole number from ${min} to ${max}`;
  return applyDecorators(IsInt({ message }), Min(min, { message }), Max(max, { message }));
}

/**
 * A query string of digits as the number it spells; anything else (`1.5`,
 * `-1`, `abc`, an empty or a repeated parameter) is left as it came, for
 * the number rules beside it to refuse.
 */
export function QueryNumber(): PropertyDecorator {
  return Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : value,
  );
}
