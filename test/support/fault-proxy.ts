import { FaultProxy } from '../../tools/fault-proxy.js';

export interface FaultProxyBed {
  /** The started proxy; read it inside a hook or a test, not at describe time. */
  readonly proxy: FaultProxy;
}

/**
 * A FaultProxy in front of `target()` for the enclosing describe block, started
 * in beforeAll and stopped in afterAll. Declare it after the fixture that
 * starts the target, so that the target exists when it is read. Each test
 * starts from a reset proxy: 'pass' mode, nothing armed.
 */
export function useFaultProxy(target: () => { host: string; port: number }): FaultProxyBed {
  let started: FaultProxy | undefined;
  beforeAll(async () => {
    started = await FaultProxy.start(target());
  });
  beforeEach(() => started?.reset());
  afterAll(() => started?.stop());
  return {
    get proxy(): FaultProxy {
      if (!started) {
        throw new Error(
          'useFaultProxy: the proxy starts in beforeAll; read it inside a hook or a test',
        );
      }
      return started;
    },
  };
}
