package authz

import "github.com/redis/go-redis/v9"

// Every change of the share table is one Lua script: it changes the grant,
// its mirror in the reverse index and the expiry index, appends to the
// audit stream and publishes the event, all in one atomic step. Publishing
// inside the script means an event can never be lost between a change and
// its announcement (a client that dies after EXEC would lose it), and
// events reach subscribers in the order the changes were made.
//
// Every script takes the same keys:
//
//	KEYS[1] grants of the server     KEYS[2] reverse index of the user
//	KEYS[3] audit stream             KEYS[4] expiry index
//
// and begins with the same arguments:
//
//	ARGV[1] user        ARGV[2] server      ARGV[3] now (Unix ms)
//	ARGV[4] actor       ARGV[5] role        ARGV[6] audit max length
//	ARGV[7] channel     ARGV[8] now, as text for the audit
//	ARGV[9] member of the expiry index
//
// A grant is stored as JSON (see record), with times in Unix ms. The
// scripts format it by hand: cjson would write large numbers in
// exponent notation.
const scriptPrelude = `
local user, server, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local actor, role, maxlen = ARGV[4], ARGV[5], ARGV[6]
local channel, at, member = ARGV[7], ARGV[8], ARGV[9]

local function encode(r)
  return string.format(
    '{"start_stop":%s,"granted_by":%s,"granted_at":%d,"updated_at":%d,"expires":%d}',
    r.start_stop and 'true' or 'false', cjson.encode(r.granted_by),
    r.granted_at, r.updated_at, r.expires)
end

-- live decodes a stored grant; nil when absent or expired
local function live(raw)
  if not raw then return nil end
  local r = cjson.decode(raw)
  if r.expires ~= 0 and r.expires <= now then return nil end
  return r
end

local function audit(what, startStop, expires)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
    'who', actor, 'role', role, 'what', what, 'server', server,
    'user', user, 'start_stop', startStop and 'true' or 'false',
    'expires', expires, 'at', at)
end

local function remove()
  redis.call('HDEL', KEYS[1], user)
  redis.call('HDEL', KEYS[2], server)
  redis.call('ZREM', KEYS[4], member)
end
`

// grantScript creates or updates a grant.
//
//	ARGV[10] start/stop "1" or "0"   ARGV[11] expiry (Unix ms, 0 never)
//	ARGV[12] expiry as text          ARGV[13] grant event
//	ARGV[14] change event
//
// It returns {kind, record}: kind "grant" for a new share (an expired one
// counts as absent), "change" for an existing one, which keeps its
// granted_by and granted_at.
var grantScript = redis.NewScript(scriptPrelude + `
local startStop, expires = ARGV[10] == '1', tonumber(ARGV[11])
local r = live(redis.call('HGET', KEYS[1], user))
local kind, ev = 'change', ARGV[14]
if r then
  r.start_stop, r.updated_at, r.expires = startStop, now, expires
else
  kind, ev = 'grant', ARGV[13]
  r = {start_stop = startStop, granted_by = actor, granted_at = now,
       updated_at = now, expires = expires}
end

local rec = encode(r)
redis.call('HSET', KEYS[1], user, rec)
redis.call('HSET', KEYS[2], server, rec)
if expires ~= 0 then
  redis.call('ZADD', KEYS[4], expires, member)
else
  redis.call('ZREM', KEYS[4], member)
end
audit(kind, startStop, ARGV[12])
redis.call('PUBLISH', channel, ev)
return {kind, rec}
`)

// changeScript sets the start/stop permission of a live grant.
//
//	ARGV[10] start/stop "1" or "0"   ARGV[11] change event
//
// It returns the record, or nil when there is no live grant.
var changeScript = redis.NewScript(scriptPrelude + `
local r = live(redis.call('HGET', KEYS[1], user))
if not r then return false end
r.start_stop, r.updated_at = ARGV[10] == '1', now

local rec = encode(r)
redis.call('HSET', KEYS[1], user, rec)
redis.call('HSET', KEYS[2], server, rec)
audit('change', r.start_stop, '')
redis.call('PUBLISH', channel, ARGV[11])
return rec
`)

// revokeScript removes a live grant.
//
//	ARGV[10] what, for the audit ("revoke" or "leave")
//	ARGV[11] revoke event
//
// It returns the removed record, or nil when there is no live grant (an
// expired one is left for the sweeper, which announces it).
var revokeScript = redis.NewScript(scriptPrelude + `
local raw = redis.call('HGET', KEYS[1], user)
local r = live(raw)
if not r then return false end

remove()
audit(ARGV[10], r.start_stop, '')
redis.call('PUBLISH', channel, ARGV[11])
return raw
`)

// expireScript removes a grant if it has expired.
//
//	ARGV[10] revoke event
//
// It returns 1 when it removed the grant, 2 when it dropped a stale entry
// of the expiry index, and 0 when the grant has not expired.
var expireScript = redis.NewScript(scriptPrelude + `
local raw = redis.call('HGET', KEYS[1], user)
if not raw then
  redis.call('ZREM', KEYS[4], member)
  return 2
end
local r = cjson.decode(raw)
if r.expires == 0 then
  redis.call('ZREM', KEYS[4], member)
  return 2
end
if r.expires > now then return 0 end

remove()
audit('expire', r.start_stop, '')
redis.call('PUBLISH', channel, ARGV[10])
return 1
`)
