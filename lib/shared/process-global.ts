/**
 * State that must be one per process even when the package is loaded twice:
 * as its ES module build through `import` and as its CommonJS build through
 * `require` (an ESM app whose test runner or a dependency uses CommonJS), or
 * as two installed copies. Each such value lives on `globalThis` under a
 * `Symbol.for` key, which every copy of the package computes alike.
 *
 * A key names a shape: change its `.vN` suffix whenever the shape of what
 * is stored there (or of what it is used to call) changes, so that copies
 * of different versions keep apart instead of misreading each other.
 */
export function processGlobal<T>(key: string, create: () => T): T {
  const slot = globalThis as unknown as Record<symbol, T | undefined>;
  return (slot[Symbol.for(`nestjs-redis-tx.${key}`)] ??= create());
}
