/**
 * The driver's Lua scripts: each `RoomDriver` method that must be atomic is one script, so that no interleaving of
 * matchmakers on any number of nodes can put a room over capacity (Redis runs a script with nothing in between).
 *
 * Key layout (`P` is the prefix): `P room:<id>` hash (name, pid, max (-1: no limit), locked, private, meta (JSON),
 * createdAt, clients); `P seats:<id>` sorted set of live reservation tokens scored by expiry; `P seat:<token>` hash
 * (roomId, expiresAt, options, reconnect, state) kept for a tombstone period after use or expiry; `P node:<pid>`
 * the node's heartbeat (a key with a TTL, its value the node's status as JSON); `P alive:<pid>` a channel the
 * node's own connection subscribes to while it lives; index sets `P rooms`, `P node-rooms:<pid>` and `P nodes`.
 */

import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

const shas = new Map<string, string>();

/**
 * Runs one of these scripts by its SHA-1 (`EVALSHA`), sending its text (`EVAL`) only when Redis does not have it
 * cached yet (first use, or after a restart or `SCRIPT FLUSH`): every registry operation of a join storm would
 * otherwise carry the script's text.
 */
export async function runScript(
  redis: Redis,
  script: string,
  keys: string[],
  args: string[],
): Promise<unknown> {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    shas.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}

/** KEYS: room, name index, node-rooms, all rooms, nodes. ARGV: id, name, pid, max, locked, private, meta, createdAt, clients. */
export const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'pid', ARGV[3], 'max', ARGV[4], 'locked', ARGV[5],
  'private', ARGV[6], 'meta', ARGV[7], 'createdAt', ARGV[8], 'clients', ARGV[9])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[3])
return 1
`;

/** KEYS: room. ARGV: field, value, field, value... Only patches a room that exists (a late update never revives one). */
export const UPDATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`;

/** KEYS: room, seats, all rooms. ARGV: id, prefix. Index sets of the room's name and node are derived from it. */
export const REMOVE = `
local name = redis.call('HGET', KEYS[1], 'name')
local pid = redis.call('HGET', KEYS[1], 'pid')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
if name then redis.call('SREM', ARGV[2] .. 'rooms:' .. name, ARGV[1]) end
if pid then redis.call('SREM', ARGV[2] .. 'node-rooms:' .. pid, ARGV[1]) end
return name and 1 or 0
`;

/**
 * Whether a node lives, as the driver's `probe` decides it, inside a script: its heartbeat exists and, when it is a
 * registered node's (`sub` in its status), its liveness channel still has its subscriber. ARGV-derived keys, as
 * `REMOVE`'s index sets (one primary, not Redis Cluster).
 */
const LIVE = `
local function live(prefix, pid)
  local beat = redis.call('GET', prefix .. 'node:' .. pid)
  if not beat then return false end
  if beat == '1' then return true end
  local ok, st = pcall(cjson.decode, beat)
  if not ok or type(st) ~= 'table' or st.sub ~= 1 then return true end
  return redis.call('PUBSUB', 'NUMSUB', prefix .. 'alive:' .. pid)[2] > 0
end
`;

/**
 * KEYS: room, seats. ARGV: now, prefix. One room's listing in one round trip: `{ fields, reserved, live }` (its
 * hash as a flat list, its live reservations, whether its node lives), or nil when it is not registered. A room
 * check of a client whose transport dropped asks this: two round trips on a node busy with a lost node's clients
 * were two waits behind every other request.
 */
export const LOOKUP = `${LIVE}
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
local pid = redis.call('HGET', KEYS[1], 'pid')
local reserved = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[1], '+inf')
return { h, reserved, (pid and live(ARGV[2], pid)) and 1 or 0 }
`;

/**
 * KEYS: an index set of rooms. ARGV: now, prefix, includePrivate, includeUnavailable. The rooms of the index that
 * a listing or matchmaking may show, as `{ id, fields, id, fields, ... }` (each room's hash as a flat list): their
 * node lives, and unless asked for, they are neither private, locked nor full (joined plus live reservations).
 * Filtered here rather than by the node: in a join storm, or when a lost node's clients rematchmake together,
 * nearly every room is full, and every matchmaking request loaded every room's hash and reservations (two
 * commands a room, 150 for 75 rooms) only to drop them. Runs in O(rooms of the index), as those commands did.
 */
export const QUERY = `${LIVE}
local out = {}
local alive = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. 'room:' .. id
  local r = redis.call('HMGET', key, 'pid', 'locked', 'max', 'clients', 'private')
  if r[1] then
    local ok = ARGV[3] == '1' or r[5] ~= '1'
    if ok and ARGV[4] ~= '1' then
      local max = tonumber(r[3]) or -1
      if r[2] == '1' then
        ok = false
      elseif max >= 0 then
        local reserved = redis.call('ZCOUNT', ARGV[2] .. 'seats:' .. id, '(' .. ARGV[1], '+inf')
        ok = (tonumber(r[4]) or 0) + reserved < max
      end
    end
    if ok then
      local l = alive[r[1]]
      if l == nil then
        l = live(ARGV[2], r[1])
        alive[r[1]] = l
      end
      if l then
        out[#out + 1] = id
        out[#out + 1] = redis.call('HGETALL', key)
      end
    end
  end
end
return out
`;

/**
 * KEYS: room, seats, seat. ARGV: token, roomId, expiresAt, options, reconnect, now, ignoreLock, ignoreCapacity,
 * tombstoneMs, prefix. A room whose node is dead is `not-found` (as the listing leaves it out). Expired
 * reservations leave the seats set first, so only live ones count against capacity.
 */
export const RESERVE = `${LIVE}
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not-found' end
local pid = redis.call('HGET', KEYS[1], 'pid')
if not pid or not live(ARGV[10], pid) then return 'not-found' end
local room = redis.call('HMGET', KEYS[1], 'locked', 'max', 'clients')
if room[1] == '1' and ARGV[7] ~= '1' then return 'locked' end
local now = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local max = tonumber(room[2])
if ARGV[8] ~= '1' and max >= 0 and tonumber(room[3]) + redis.call('ZCARD', KEYS[2]) >= max then return 'full' end
local expiresAt = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], expiresAt, ARGV[1])
redis.call('HSET', KEYS[3], 'roomId', ARGV[2], 'expiresAt', ARGV[3], 'options', ARGV[4], 'reconnect', ARGV[5],
  'state', 'reserved')
redis.call('PEXPIRE', KEYS[3], math.max(1, math.ceil(expiresAt - now + tonumber(ARGV[9]))))
return 'ok'
`;

/** KEYS: room, seats, seat. ARGV: token, now. Answers `{ 'ok', expiresAt, options, reconnect }` or `{ outcome }`. */
export const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return { 'invalid' } end
local seat = redis.call('HMGET', KEYS[3], 'roomId', 'expiresAt', 'options', 'reconnect', 'state')
if not seat[1] then return { 'invalid' } end
if seat[5] ~= 'reserved' then return { seat[5] } end
if tonumber(seat[2]) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[3], 'state', 'expired')
  return { 'expired' }
end
-- Only a seat still counted against capacity is taken: one forgotten when a stalled node's rooms were swept (and
-- relisted without their reservations) would put the room over capacity.
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return { 'invalid' } end
redis.call('HSET', KEYS[3], 'state', 'used')
redis.call('HINCRBY', KEYS[1], 'clients', 1)
return { 'ok', seat[2], seat[3], seat[4] }
`;

/** KEYS: room. */
export const RELEASE = `
local n = tonumber(redis.call('HGET', KEYS[1], 'clients') or '0')
if n > 0 then redis.call('HINCRBY', KEYS[1], 'clients', -1) end
return n
`;

/**
 * KEYS: node heartbeat, nodes. ARGV: status, ttl, pid. Refreshes the heartbeat (its value is the node's status);
 * answers whether it still existed (0: Redis lost it, or the node stalled past its TTL and was swept).
 */
export const BEAT = `
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return existed
`;

/** KEYS: key. ARGV: value. Deletes a lock only its owner holds. */
export const DEL_IF = `
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
