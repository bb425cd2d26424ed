import { addMethodLayer } from '../binding/method-layers.js';
import { checkLockNames } from './lock-keys.js';
import { checkLockOptionKeys, checkLockOptions } from './lock-options.validator.js';
import type { LockedOptions, LockKey } from './lock.options.js';

/**
 * Runs the method holding a distributed lock on `key` (a string, or a function
 * of the method's arguments returning one or several), renewed while it runs
 * and released however it ends. With `@Transactional` on the same method, in
 * either order, the lock is held around the whole transaction.
 */
export function Locked(key: LockKey, options: LockedOptions = {}): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    const label = `@Locked() on ${target.constructor.name}.${String(propertyKey)}`;
    checkLockOptionKeys(options, 'locked', label);
    checkLockOptions(options, label);
    if (typeof key !== 'function') checkLockNames(key, Infinity, label);
    const keyOf = (args: readonly unknown[]): unknown =>
      typeof key === 'function' ? (key as (...a: readonly unknown[]) => unknown)(...args) : key;
    addMethodLayer(
      target,
      descriptor,
      {
        order: 0,
        run: ({ locks }, _self, args, next) => locks.runLocked(keyOf(args), options, label, next),
      },
      label,
    );
  };
}
