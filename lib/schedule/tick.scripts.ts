// The scripts that claim a job's tick and record its run. Each runs
// atomically in Redis and touches only the job's two keys (one hash tag).

/**
 * KEYS: claimed, lastRun.
 * ARGV: tick (ms), instance, fencing token, startedAt, trigger ('tick' |
 * 'catch-up'), missedTicks (counted from the last claimed tick as read just
 * before).
 *
 * Claims `tick` for one run: only when it is strictly later than the last
 * tick claimed, so a tick runs once, and an instance whose clock is behind
 * (which computes an earlier tick) can never claim a tick again, nor one
 * before it. A catch-up claims only when an earlier tick was claimed before:
 * with no history, nothing was missed. The claim and the start of the run's
 * record are written together, so a record always names a claimed tick.
 * Returns { 1, previous tick or -1 } when claimed, { 0, last tick } when not.
 */
const claim = `
local last = tonumber(redis.call('HGET', KEYS[1], 'tick'))
local tick = tonumber(ARGV[1])
if last and tick <= last then return { 0, last } end
if ARGV[5] == 'catch-up' and not last then return { 0, -1 } end
redis.call('HSET', KEYS[1], 'tick', ARGV[1], 'instance', ARGV[2], 'fencingToken', ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'instance', ARGV[2], 'fencingToken', ARGV[3], 'scheduledAt', ARGV[1],
  'startedAt', ARGV[4], 'outcome', 'running', 'trigger', ARGV[5], 'missedTicks', ARGV[6])
return { 1, last or -1 }`;

/**
 * KEYS: lastRun. ARGV: tick (ms), endedAt, outcome, errorName ('' for none),
 * missedTicks (counted again from the tick the claim replaced, which another
 * claim may have moved since it was first read).
 * Ends the record of the run of `tick`, unless a later run has replaced it
 * (this one ended after the next tick's run had started).
 * Returns 1 when written, 0 when the record belongs to another run.
 */
const finish = `
if redis.call('HGET', KEYS[1], 'scheduledAt') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'endedAt', ARGV[2], 'outcome', ARGV[3], 'missedTicks', ARGV[5])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'errorName', ARGV[4]) end
return 1`;

export const tickScripts = { claim, finish } as const;
