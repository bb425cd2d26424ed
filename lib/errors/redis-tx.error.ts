/** Base class of every error this library throws: `catch (e) { if (e instanceof RedisTxError) … }`. */
export class RedisTxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
