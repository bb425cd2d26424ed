import { markDecorated, runtimeOf, type RedisTxRuntime } from './instance-binding.js';

/** One decorator's part of a decorated method's call. */
export interface MethodLayer {
  /**
   * Lower runs outside. Locks (0) are taken before a transaction (1) starts
   * and released after it ends, whichever order the decorators are written in.
   */
  order: number;
  run(
    runtime: RedisTxRuntime,
    self: unknown,
    args: readonly unknown[],
    next: () => Promise<unknown>,
  ): Promise<unknown>;
}

type Method = (this: unknown, ...args: unknown[]) => unknown;
// Registered, so that decorators from both builds of the package stack on one
// wrapper (see shared/process-global.ts for the version suffix).
const layersKey = Symbol.for('nestjs-redis-tx.method-layers.v1');
type LayeredMethod = Method & { [layersKey]?: MethodLayer[] };

/**
 * Adds a layer to a method. The first layer replaces the method with one
 * wrapper that keeps what other decorators recorded on the original (routes,
 * guards, @Cron) and its name; later layers join that wrapper.
 */
export function addMethodLayer(
  target: object,
  descriptor: PropertyDescriptor,
  layer: MethodLayer,
  label: string,
): void {
  markDecorated(target);
  const current = descriptor.value as LayeredMethod;
  if (typeof current !== 'function') return;
  const existing = current[layersKey];
  if (existing) {
    existing.push(layer);
    existing.sort((a, b) => a.order - b.order);
    return;
  }
  const layers = [layer];
  const wrapped: LayeredMethod = function (this: unknown, ...args: unknown[]) {
    // No async wrapper here: the outermost layer's promise is returned as it
    // is, which spares every call the extra turns an async function adds.
    try {
      return runFrom(0, layers, runtimeOf(this, label), this, current, args);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  };
  wrapped[layersKey] = layers;
  for (const key of Reflect.getOwnMetadataKeys(current)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, current), wrapped);
  }
  Object.defineProperty(wrapped, 'name', { value: current.name });
  descriptor.value = wrapped;
}

/** Runs `layers[index]` around the rest; one closure per layer and call, the `next` it is handed. */
function runFrom(
  index: number,
  layers: readonly MethodLayer[],
  runtime: RedisTxRuntime,
  self: unknown,
  method: Method,
  args: unknown[],
): Promise<unknown> {
  if (index === layers.length) return Promise.resolve(method.apply(self, args));
  return layers[index]!.run(runtime, self, args, () =>
    runFrom(index + 1, layers, runtime, self, method, args),
  );
}
