/**
 * Fails each test of the enclosing describe block after which a promise
 * rejection went unhandled: a fault must surface as a typed error to the
 * caller, never as a stray rejection. Returns the list, for tests that look.
 */
export function useUnhandledRejections(): unknown[] {
  const unhandled: unknown[] = [];
  const record = (reason: unknown) => unhandled.push(reason);
  beforeAll(() => process.on('unhandledRejection', record));
  afterAll(() => process.off('unhandledRejection', record));
  afterEach(() => expect(unhandled.splice(0)).toEqual([]));
  return unhandled;
}
