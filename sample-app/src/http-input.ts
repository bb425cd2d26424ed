import { BadRequestException } from '@nestjs/common';

/** `value` as a whole number within [min, max], or 400 Bad Request naming the field. */
export function wholeNumber(value: unknown, field: string, min: number, max: number): number {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < min || number > max) {
    throw new BadRequestException(`${field} must be a whole number from ${min} to ${max}`);
  }
  return number;
}

/** `value` as a non-empty name of letters, digits, `-` and `_`, or 400 Bad Request naming the field. */
export function name(value: unknown, field: string): string {
  if (typeof value !== 'string' || !/^[\w-]{1,64}$/.test(value)) {
    throw new BadRequestException(`${field} must be 1 to 64 letters, digits, "-" or "_"`);
  }
  return value;
}
