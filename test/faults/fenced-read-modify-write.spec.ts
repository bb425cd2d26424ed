import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LockService, RedisTx } from '../../lib/index.js';
import { fencingScripts } from '../../sample-app/src/fencing.scripts.js';
import { useAppWithRedis } from '../support/app-with-redis.js';
import { ForkedWorker } from '../support/forked-worker.js';

// The workers import the BUILT package: run `npm run build` (tsc -p tsconfig.build.json) first.
const script = fileURLToPath(new URL('./fixtures/fault-worker.mjs', `file://${__filename}`));

interface WriteOutcome {
  accepted: boolean;
  error?: string;
}

/**
 * The fencing recipe of docs/locks.md (the sample app's fencing.scripts.ts) guards a
 * read-modify-write, not only a write: a holder frozen between its read and
 * its write is refused once the next holder has read, whichever of the two
 * writes first. Each holder appends its token to a list it read, so a lost
 * update shows as an accepted token missing from the list.
 */
describe('a fenced read-modify-write when the holder freezes between its read and its write', () => {
  const bed = useAppWithRedis({ options: { scripts: fencingScripts, locks: { pollMs: 100 } } });
  const workers: ForkedWorker[] = [];

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.kill()));
  });

  it('keeps the locks guide and the sample app on the same scripts', () => {
    const guide = readFileSync(new URL('../../docs/locks.md', `file://${__filename}`), 'utf8');
    for (const { lua } of Object.values(fencingScripts)) expect(guide).toContain(lua);
  });

  it.each([
    ['before', 'the new holder writes'],
    ['after', 'the new holder has written'],
  ])('refuses the frozen holder that resumes and writes %s %s; no update is lost', async (when) => {
    const name = `ledger:${when}`;
    const stale = ForkedWorker.start(script, [
      'read-modify-write',
      bed.server.url,
      '300',
      name,
      JSON.stringify(fencingScripts),
    ]);
    workers.push(stale);
    const staleToken = Number(await stale.line('read'));
    stale.child.kill('SIGSTOP');

    // Its lease ends in Redis while it is frozen; the next holder reads the same list.
    const redis = bed.app.get(RedisTx).client;
    const lock = await bed.app.get(LockService).acquire(name, { waitMs: 10_000 });
    expect(lock.fencingToken).toBeGreaterThan(staleToken);
    const entries = (await redis.readFenced(name, lock.fencingToken, 'entries')) ?? '';
    expect(entries).toBe('');
    const write = () =>
      redis
        .writeFenced(name, lock.fencingToken, 'entries', `${entries}${lock.fencingToken};`)
        .then(() => true);

    let written = false;
    if (when === 'after') written = await write();
    stale.tell('write');
    stale.child.kill('SIGCONT');
    const outcome = await stale.result<WriteOutcome>();
    if (when === 'before') written = await write();

    expect(outcome).toEqual({
      accepted: false,
      error: `STALE fencing token ${staleToken} < ${lock.fencingToken}`,
    });
    expect(written).toBe(true);
    expect(await bed.observer.hgetall(name)).toEqual({
      entries: `${lock.fencingToken};`,
      fence: String(lock.fencingToken),
    });
    expect(await stale.exitCode()).toBe(0);
    expect(await lock.release()).toBe(true);
  });
});
