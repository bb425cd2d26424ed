import { randomBytes } from 'node:crypto';

const tokenBytes = 16;
const tokensPerBatch = 256;
// A cache of random bytes: each copy of the package (ES module and CommonJS
// builds in one process) keeps its own, and no token is ever drawn twice.
let batch = Buffer.alloc(0);
let offset = 0;

/**
 * A fresh, unguessable 128-bit holder token. Random bytes are drawn from the
 * system's CSPRNG in batches: one call per token cost as much as the rest of
 * an uncontended lock cycle on the client.
 */
export function newToken(): string {
  if (offset >= batch.length) {
    batch = randomBytes(tokenBytes * tokensPerBatch);
    offset = 0;
  }
  const token = batch.toString('hex', offset, offset + tokenBytes);
  offset += tokenBytes;
  return token;
}
