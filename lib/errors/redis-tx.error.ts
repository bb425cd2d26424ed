/** On RedisTxError.prototype, so every error of every copy of the package carries it. */
const errorBrand = Symbol.for('nestjs-redis-tx.error');

/**
 * Base class of every error this library throws: `catch (e) { if (e instanceof RedisTxError) … }`.
 *
 * `instanceof` on it and on its subclasses also holds for errors made by the
 * package's other build (its ES module build beside its CommonJS build in
 * one process, which have two copies of each class): an error matches a
 * class when it carries the package's brand and a class of the same name is
 * on its prototype chain. Classes outside the package that extend these
 * match as usual, and across the two builds by the same rule.
 */
export class RedisTxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  static override [Symbol.hasInstance]<T>(
    this: abstract new (...args: never[]) => T,
    value: unknown,
  ): value is T {
    // The usual prototype check first: exact, and all that one copy needs.
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (typeof value !== 'object' || value === null || !(errorBrand in value)) return false;
    for (let p = Object.getPrototypeOf(value) as object | null; p; p = Object.getPrototypeOf(p)) {
      const constructor: unknown = Object.hasOwn(p, 'constructor') ? p.constructor : undefined;
      if (typeof constructor === 'function' && constructor.name === this.name) return true;
    }
    return false;
  }
}

Object.defineProperty(RedisTxError.prototype, errorBrand, { value: true });
