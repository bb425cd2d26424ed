// Lua for looking into a lock and for freeing a stuck one. They read the
// keys LockRedisKeys names, in the layout lock.scripts.ts keeps, and run
// only when an operator asks: never on the path of taking or renewing a lock.
import { lockScriptParts } from '../lock.scripts.js';
import { holderTokenFieldsLua } from './holder-token.js';

const { now, handOff } = lockScriptParts;

/**
 * KEYS: writer, readers, permits, queue, waiterLeases. ARGV: how many waiters to list.
 * Returns a flat list: the number of live waiters, then five fields per
 * holder or waiter: kind (w|r|s holder, q waiter), fencing token, lease left
 * in ms, asked-at epoch ms, permits ('' when unknown). Tokens never leave.
 */
const inspect = `
${now}
local out = {0}
local function add(kind, fence, left, token)
  local askedAt, permits = string.match(token or '', ${holderTokenFieldsLua})
  table.insert(out, kind)
  table.insert(out, fence or '')
  table.insert(out, left or '')
  table.insert(out, askedAt or '')
  table.insert(out, permits or '')
end
local value = redis.call('GET', KEYS[1])
if value then
  local token, fence = string.match(value, '^(%S+) (%d+)$')
  add('w', fence, tostring(redis.call('PTTL', KEYS[1])), token)
end
for _, kind in ipairs({'r', 's'}) do
  local holders = KEYS[2]
  if kind == 's' then holders = KEYS[3] end
  local live = redis.call('ZRANGEBYSCORE', holders, '(' .. now, '+inf', 'WITHSCORES')
  for i = 1, #live, 2 do add(kind, nil, tostring(tonumber(live[i + 1]) - now), live[i]) end
end
out[1] = redis.call('ZCOUNT', KEYS[5], '(' .. now, '+inf')
local listed, at = 0, 0
local max = tonumber(ARGV[1])
while listed < max do
  local batch = redis.call('ZRANGE', KEYS[4], at, at + 99)
  if #batch == 0 then break end
  at = at + #batch
  for _, token in ipairs(batch) do
    local lease = tonumber(redis.call('ZSCORE', KEYS[5], token))
    if listed < max and lease and lease > now then
      add('q' .. (string.match(token, '%.(%a)%.%d+$') or 'w'), nil, nil, token)
      listed = listed + 1
    end
  end
end
return out`;

/**
 * KEYS: writer, readers, permits, queue, waiterLeases, fence, evictions.
 * ARGV: hand-off channel base, publish command.
 * Evicts every holder, remembers a hash of each evicted token (so that a
 * holder whose renewal fails can learn why) for as long as it may still
 * renew, raises the fencing counter, and hands the lock to the head of the
 * line or wakes it, as a release does. Returns { evicted, fencing token }.
 */
const forceRelease = `
local channel, publish = ARGV[1], ARGV[2]
${now}
${handOff}
local evicted, longest = 0, 0
local function evict(token, left)
  redis.call('SADD', KEYS[7], redis.sha1hex(token))
  if left > longest then longest = left end
  evicted = evicted + 1
end
local value = redis.call('GET', KEYS[1])
if value then
  evict(string.match(value, '^(%S+) ') or value, redis.call('PTTL', KEYS[1]))
  redis.call('DEL', KEYS[1])
end
for _, holders in ipairs({KEYS[2], KEYS[3]}) do
  local live = redis.call('ZRANGEBYSCORE', holders, '(' .. now, '+inf', 'WITHSCORES')
  for i = 1, #live, 2 do evict(live[i], tonumber(live[i + 1]) - now) end
  redis.call('DEL', holders)
end
if evicted > 0 then
  -- An evicted holder renews before its lease ends; twice that leaves room for a slow one.
  local keep = longest * 2 + 1000
  if redis.call('PTTL', KEYS[7]) < keep then redis.call('PEXPIRE', KEYS[7], keep) end
end
local fence = redis.call('INCR', KEYS[6])
if redis.call('EXISTS', KEYS[4]) == 1 then
  handOff(KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6], channel, publish, now)
end
return {evicted, fence}`;

export const lockAdminScripts = {
  inspect: { lua: inspect, numberOfKeys: 5 },
  forceRelease: { lua: forceRelease, numberOfKeys: 7 },
} as const;
