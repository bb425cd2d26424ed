// The lock's Lua scripts. Each runs atomically in Redis, touches only keys it
// is given (one hash tag per lock, plus the fence counter), and compares the
// holder's token before changing anything, so no holder can release or
// extend a lock it does not hold.

const now = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)`;

// Waiters whose own lease ran out crashed or gave up: they leave the line.
const forgetGoneWaiters = (queue: string, leases: string) => `
local gone = redis.call('ZRANGEBYSCORE', ${leases}, '-inf', now)
if #gone > 0 then
  redis.call('ZREM', ${queue}, unpack(gone))
  redis.call('ZREMRANGEBYSCORE', ${leases}, '-inf', now)
end`;

// A waiter's token names its application after an "@" (see holderToken), and
// each application listens on a channel of its own: a hand-off reaches the
// process that waits for it and no other. Tokens made before there was an
// application in them are announced on the base channel.
const channelOf = `
local function appOf(token)
  return string.match(token, '^%x+@(%w+)%.')
end
local function channelOf(base, token)
  local app = appOf(token)
  if app then return base .. ':' .. app end
  return base
end`;

// The writer key holds "<token> <fencing token>", so a holder that missed
// its hand-off message can still learn its fencing token.
const ownsWriter = `
local function ownsWriter(value, token)
  return value and string.sub(value, 1, #token + 1) == token .. ' '
end`;

/**
 * Hands a free lock to the head of the line when it waits to write: the lock
 * is set in its name, so no newcomer can take it first, and the message
 * wakes the waiter, which holds the lock from then on. Any other head (a
 * reader, a semaphore) is woken to try. Waiter tokens end in
 * ".<mode>.<ttlMs>", which is how the script knows what the head wants.
 *
 * \`releasing\` is set by a writer's release that has left its writer key in
 * place: the head, when it waits to write, takes the key over in one SET,
 * and otherwise the key is deleted here. Nobody can hold a read lock while a
 * writer holds the lock, so that release need not look at the readers.
 *
 * A head of the application that runs the script (\`here\`, its id) is not
 * told on its channel: the message is returned, and that application wakes
 * its waiter from the reply, sparing a publication and a read of it.
 */
const handOff = `${channelOf}
local function handOff(writer, readers, queue, leases, fence, channel, publish, now, here, releasing)
  local gone = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
  if #gone > 0 then
    redis.call('ZREM', queue, unpack(gone))
    redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  end
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  if not head then
    if releasing then redis.call('DEL', writer) end
    return
  end
  local headMode, headTtl = string.match(head, '%.(%a)%.(%d+)$')
  local message = head
  local free = releasing
  if headMode == 'w' and not releasing then
    redis.call('ZREMRANGEBYSCORE', readers, '-inf', now)
    free = redis.call('EXISTS', writer) == 0 and redis.call('ZCARD', readers) == 0
  end
  if headMode == 'w' and free then
    local granted = redis.call('INCR', fence)
    redis.call('SET', writer, head .. ' ' .. granted, 'PX', tonumber(headTtl))
    redis.call('ZREM', queue, head)
    redis.call('ZREM', leases, head)
    message = head .. ' ' .. granted
  elseif releasing then
    redis.call('DEL', writer)
  end
  if here and appOf(head) == here then return message end
  redis.call(publish, channelOf(channel, head), message)
end`;

/**
 * KEYS: writer, readers, permits, queue, waiterLeases, fence.
 * ARGV: token, ttlMs, mode (w|r|s), permits, enqueue (1|0), waiterLeaseMs, channel, publish command.
 * Returns the fencing token when acquired, 0 when busy. Waiters are served in
 * arrival order: a free lock goes to the head of the line, never to a newcomer.
 */
const acquire = `
local writer, readers, permits, queue, leases, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local token, ttl, mode, limit = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local enqueue, waiterLease, channel, publish = ARGV[5] == '1', tonumber(ARGV[6]), ARGV[7], ARGV[8]
${ownsWriter}
-- Takes a place at the end of the line, or keeps the one it has, and
-- renews the waiter's lease.
local function joinLine(now)
  if not redis.call('ZSCORE', queue, token) then
    local last = redis.call('ZRANGE', queue, -1, -1, 'WITHSCORES')[2]
    redis.call('ZADD', queue, (tonumber(last) or 0) + 1, token)
  end
  redis.call('ZADD', leases, now + waiterLease, token)
  redis.call('PEXPIRE', queue, waiterLease)
  redis.call('PEXPIRE', leases, waiterLease)
end
if mode == 'w' then
  local current = redis.call('GET', writer)
  -- The common case, a free lock with no readers and nobody in line.
  if not current and redis.call('EXISTS', queue, readers) == 0 then
    local granted = redis.call('INCR', fence)
    redis.call('SET', writer, token .. ' ' .. granted, 'PX', ttl)
    return granted
  end
  -- Handed over already (the waiter heard it, or missed the message): it is
  -- ours. The lease is renewed now, so that the waiter can count it from
  -- when it sent this, not from a hand-off at a moment it cannot know.
  if ownsWriter(current, token) then
    redis.call('PEXPIRE', writer, ttl)
    return tonumber(string.sub(current, #token + 2))
  end
  if current then
    -- Another writer holds it: nothing can be granted before its release,
    -- which also clears the line of waiters who left (see handOff).
    if enqueue then
      ${now}
      joinLine(now)
    end
    return 0
  end
end
${now}
${forgetGoneWaiters('queue', 'leases')}
redis.call('ZREMRANGEBYSCORE', readers, '-inf', now)
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)

local free
if mode == 'w' then
  free = redis.call('EXISTS', writer) == 0 and redis.call('ZCARD', readers) == 0
elseif mode == 'r' then
  free = redis.call('EXISTS', writer) == 0
else
  free = redis.call('ZCARD', permits) < limit
end

local head = redis.call('ZRANGE', queue, 0, 0)[1]
if free and (head == nil or head == token) then
  if head == token then
    redis.call('ZREM', queue, token)
    redis.call('ZREM', leases, token)
  end
  if mode == 'w' then
    local granted = redis.call('INCR', fence)
    redis.call('SET', writer, token .. ' ' .. granted, 'PX', ttl)
    return granted
  else
    local holders = permits
    if mode == 'r' then holders = readers end
    redis.call('ZADD', holders, now + ttl, token)
    if redis.call('PTTL', holders) < ttl then redis.call('PEXPIRE', holders, ttl) end
    -- A reader or a permit leaves room: the next in line may go too.
    local nextHead = redis.call('ZRANGE', queue, 0, 0)[1]
    if nextHead then
      ${channelOf}
      redis.call(publish, channelOf(channel, nextHead), nextHead)
    end
  end
  return redis.call('INCR', fence)
end
if enqueue then joinLine(now) end
return 0`;

/**
 * KEYS: writer, readers, permits, queue, waiterLeases, fence.
 * ARGV: token, mode, channel, publish command, the releasing application's id.
 * Returns 1 when this token held the lock and released it, 0 otherwise; then
 * hands the lock to the next in line, or wakes it. When that waiter is of
 * the releasing application, the reply is the message meant for it instead
 * of 1 (see handOff).
 */
const release = `
local token, mode, channel, publish, here = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
${ownsWriter}
${handOff}
if mode == 'w' then
  if not ownsWriter(redis.call('GET', KEYS[1]), token) then return 0 end
  -- Only when someone is in line is there anyone to hand over to.
  if redis.call('EXISTS', KEYS[4]) == 0 then return redis.call('DEL', KEYS[1]) end
  ${now}
  local told = handOff(KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6], channel, publish, now, here, true)
  if told then return told end
  return 1
end
local released = 0
if mode == 'r' then
  released = redis.call('ZREM', KEYS[2], token)
else
  released = redis.call('ZREM', KEYS[3], token)
end
-- Only when someone is in line is there anyone to hand over to.
if released == 1 and redis.call('EXISTS', KEYS[4]) == 1 then
  ${now}
  local told = handOff(KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6], channel, publish, now, here)
  if told then return told end
end
return released`;

/** KEYS: writer, readers, permits. ARGV: token, mode, ttlMs. Returns 1 when the lease was renewed, 0 when it is no longer held. */
const extend = `
local token, mode, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
${ownsWriter}
if mode == 'w' then
  if ownsWriter(redis.call('GET', KEYS[1]), token) then return redis.call('PEXPIRE', KEYS[1], ttl) end
  return 0
end
local holders = KEYS[3]
if mode == 'r' then holders = KEYS[2] end
${now}
local lease = tonumber(redis.call('ZSCORE', holders, token))
if lease == nil or lease <= now then
  redis.call('ZREM', holders, token)
  return 0
end
redis.call('ZADD', holders, 'XX', now + ttl, token)
if redis.call('PTTL', holders) < ttl then redis.call('PEXPIRE', holders, ttl) end
return 1`;

/**
 * KEYS: writer, readers, queue, waiterLeases, fence. ARGV: token, channel, publish command.
 * A waiter that gives up leaves the line; if the lock was handed to it in the
 * meantime, or it was first in line, the lock goes on to the next one.
 */
const leave = `
local token, channel, publish = ARGV[1], ARGV[2], ARGV[3]
${ownsWriter}
${handOff}
local wasHead = redis.call('ZRANGE', KEYS[3], 0, 0)[1] == token
redis.call('ZREM', KEYS[3], token)
redis.call('ZREM', KEYS[4], token)
local granted = ownsWriter(redis.call('GET', KEYS[1]), token)
if granted then redis.call('DEL', KEYS[1]) end
if wasHead or granted then
  ${now}
  handOff(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], channel, publish, now)
end
return 1`;

/** KEYS: writer, readers, permits. Returns 1 while anyone holds the lock. */
const isLocked = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
${now}
if redis.call('ZCOUNT', KEYS[2], now + 1, '+inf') > 0 then return 1 end
if redis.call('ZCOUNT', KEYS[3], now + 1, '+inf') > 0 then return 1 end
return 0`;

/**
 * KEYS: writer, readers, queue, fence. ARGV: token, ttlMs.
 * A write lock taken on the chance that it is free and nobody waits, which
 * is what most acquisitions find: the fencing token when taken; 0 when a
 * writer holds it (a try-lock is refused there and then); -1 when readers
 * hold it or someone is in line, which the full acquire script decides
 * (it may have to serve the line first, or forget waiters who left).
 */
const acquireIfFree = `
if redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[2]) == 0 then
  local granted = redis.call('INCR', KEYS[4])
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. granted, 'PX', ARGV[2])
  return granted
end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
return -1`;

/**
 * KEYS: writer, queue. ARGV: token.
 * Releases a write lock when nobody is in line: 1 when this token held it,
 * 0 otherwise. -1 when someone is in line: nothing is done, and the full
 * release script, which hands the lock over, must run instead.
 */
const releaseIfAlone = `
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Registered on the module's own connections under names no user script is likely to take. */
export const lockScripts = {
  nestjsRedisTxLockAcquireIfFree: { lua: acquireIfFree, numberOfKeys: 4 },
  nestjsRedisTxLockAcquire: { lua: acquire, numberOfKeys: 6 },
  nestjsRedisTxLockReleaseIfAlone: { lua: releaseIfAlone, numberOfKeys: 2 },
  nestjsRedisTxLockRelease: { lua: release, numberOfKeys: 6 },
  nestjsRedisTxLockExtend: { lua: extend, numberOfKeys: 3 },
  nestjsRedisTxLockLeave: { lua: leave, numberOfKeys: 5 },
  nestjsRedisTxLockIsLocked: { lua: isLocked, numberOfKeys: 3 },
} as const;

/** Every script answers a number, but a release may answer the hand-off message meant for this application. */
export type LockScriptReply = number | string;

type ScriptCall = (...keysThenArgs: (string | number)[]) => Promise<LockScriptReply>;

/** The scripts as ioredis exposes them once registered. */
export type LockScriptCommands = Record<keyof typeof lockScripts, ScriptCall>;

/** Pieces the lock administration scripts (admin/lock-admin.scripts.ts) build on, so they follow these rules. */
export const lockScriptParts = { now, handOff } as const;
