/**
 * Replaces a method with `wrapper`, keeping what other decorators recorded on
 * the original (routes, @Cron, guards…) readable on the replacement, and its name.
 */
export function wrapMethod<F extends (...args: never[]) => unknown>(
  descriptor: TypedPropertyDescriptor<F>,
  wrap: (original: F) => F,
): void {
  const original = descriptor.value;
  if (typeof original !== 'function') return;
  const wrapped = wrap(original);
  for (const key of Reflect.getOwnMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), wrapped);
  }
  Object.defineProperty(wrapped, 'name', { value: original.name });
  descriptor.value = wrapped;
}
