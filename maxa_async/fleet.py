"""Fleet mode: every process (and host) on one DITAS account shares one OAuth2 token and
one rate budget through Redis.

::

    fleet = Fleet("redis://cache:6379/0", credentials=creds, rate_limit=380)
    client = MaxaClient(creds, fleet=fleet)  # its token store, rate gate and stats
    # the same, shorter: MaxaClient(creds, redis_url="redis://...", fleet_rate_limit=380)

Keys, all under one prefix per account (``maxa:{<hash of client id, user, pid>}`` unless
``key_prefix`` is given; the braces are a Redis Cluster hash tag keeping them in one slot):

``<prefix>:token``
    The fleet's current token as JSON, expiring with the token itself.
``<prefix>:lease``
    The refresh lease: a random owner id, ``PX lease_seconds``, renewed by its live holder
    every third of that; a holder that dies stops renewing, so the fleet waits at most
    ``lease_seconds`` before another process takes over.
``<prefix>:gcra``
    The rate budget's theoretical arrival time (microseconds on the Redis server's clock).
``<prefix>:cooldown``
    Present while the gateway has asked the account to pause (a 429's Retry-After).

Algorithms:

* Token: :class:`RedisTokenStore` plugs into :class:`~maxa_async.auth.TokenManager`.
  ``invalidate`` is compare-and-delete in one Lua script, so a 401 forgets the fleet's
  token only if it is still the one the 401 was for. ``refresh_lease`` is
  ``SET NX PX`` with a random owner, released by compare-and-delete. A process that does
  not get it polls (every ``poll_interval``, one round trip) until either a new token
  appears (it yields False: use the stored token, no grant) or the lease is gone,
  released without a new token or expired after its holder died (it takes the lease and
  yields True).
* Rate budget: :class:`RedisRateGate` runs GCRA in a Lua script: one atomic round trip
  per request reserves the next send time on the shared timeline (Redis ``TIME``, so the
  hosts' clocks do not matter) and returns how long to sleep. The cooldown key is checked
  in the same script; ``cool_down`` sets it (max with the current one) and pushes the
  timeline past it. A sender that slept checks the cooldown once more before sending.
  The ``limits`` library's Redis storage was not used: its moving window answers
  "allowed now?" only, so each process would have to poll (many round trips per request
  and bursts at every window edge), it knows no cooldown, and it is not a dependency.

When Redis fails (refused, timed out, any Redis error), the fleet falls back to
per-process behaviour: the token store works from process memory (the last token seen
in Redis) and the rate gate lets everything through (each client's own limiter and
cooldown still apply). One warning is logged per outage; ``Fleet.stats()`` shows
``degraded`` and ``redis_errors``. Redis is tried again ``retry_after`` seconds later.

Security: Redis holds the fleet's access and refresh tokens. Use a Redis that only the
fleet can reach (network policy, ``requirepass``/ACL user, ``rediss://`` across hosts).
Nothing here logs a token, a credential or the Redis URL's password.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import math
import random
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from .auth import token_problem
from .errors import InvalidInputError, RateLimitedError
from .models import Credentials, Token

__all__ = ["Fleet", "RedisRateGate", "RedisTokenStore", "default_key_prefix"]

log = logging.getLogger("maxa_async.fleet")

T = TypeVar("T")

_SCHEMES: Final = ("redis", "rediss", "unix")

# KEYS[1] lease, KEYS[2] token; ARGV[1] owner, ARGV[2] lease ms, ARGV[3] the token version
# seen when the wait began ("-" on the first try). Returns {acquired, token version}.
# A new token since the wait began wins over a free lease: no second grant.
_ACQUIRE_LUA: Final = """
local raw = redis.call('GET', KEYS[2])
local version = ''
if raw then version = redis.sha1hex(raw) end
if ARGV[3] ~= '-' and version ~= '' and version ~= ARGV[3] then
  return {0, version}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, version}
end
return {0, version}
"""

# KEYS[1] lease; ARGV[1] owner. Deletes the lease only if we still own it.
_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] lease; ARGV[1] owner, ARGV[2] lease ms. Extends the lease only if we own it.
_RENEW_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] token; ARGV[1] access token. Compare-and-delete.
_INVALIDATE_LUA: Final = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, token = pcall(cjson.decode, raw)
if (not ok) or token['access_token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# GCRA with reservation. KEYS[1] tat, KEYS[2] cooldown; ARGV[1] interval us (0: no cap),
# ARGV[2] burst tolerance us, ARGV[3] longest acceptable wait us (-1: any),
# ARGV[4] "1": only check the cooldown. Returns {kind, microseconds}:
# {0, wait} go after wait (slot reserved), {1, left} cooldown, {2, wait} past the deadline.
_GCRA_LUA: Final = """
local cool = redis.call('PTTL', KEYS[2])
if cool > 0 then return {1, cool * 1000} end
local interval = tonumber(ARGV[1])
if interval <= 0 or ARGV[4] == '1' then return {0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now - tonumber(ARGV[2])
if wait < 0 then wait = 0 end
local limit = tonumber(ARGV[3])
if limit >= 0 and wait > limit then return {2, wait} end
local new_tat = tat + interval
local ttl = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return {0, wait}
"""

# KEYS[1] cooldown, KEYS[2] tat; ARGV[1] ms. Max with the current cooldown; the timeline
# restarts after it, so no reservation falls inside. Returns 1 if the pause was extended.
_COOL_DOWN_LUA: Final = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) >= ms then return 0 end
redis.call('SET', KEYS[1], '1', 'PX', ms)
local t = redis.call('TIME')
local after = tonumber(t[1]) * 1000000 + tonumber(t[2]) + ms * 1000
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < after then
  redis.call('SET', KEYS[2], string.format('%.0f', after), 'PX', ms + 1000)
end
return 1
"""

# The learned pace (no ``rate_limit``): GCRA as above, at a pace the fleet finds from the
# gateway's answers. KEYS[1] tat, KEYS[2] cooldown, KEYS[3] pace (hash: gen, w, start,
# epoch, spent, since, last, probe, floor, top, seen, ramp, admitting, opened, history),
# KEYS[4] admitted, KEYS[5] refused (rings of counts per 10 ms over 1.1 s: fields t<slot> its
# bucket, n<slot> its count);
# ARGV[1] burst (sends back to back, >= 1), ARGV[2] longest acceptable wait us (-1: any),
# ARGV[3] "reserve" a slot, "check" the slot reserved at generation ARGV[8] (the cooldown,
# and whether the pace it was reserved at still holds: else reserve again) or only
# "report"; ARGV[4] successes to count, ARGV[5] refusals and ARGV[7] successes of sends
# made at generation ARGV[6] (the pace in force when they went). Returns {kind,
# microseconds, generation, pace in milli-requests/second (0: unpaced), 1 if this call cut
# the pace}; kind 3: no slot now, ask again after that long (about: callers jitter it).
#
# The rule, the single-client pacer's made fleet-wide: unpaced until refused. When fresh
# refusals (of sends made at the pace in force) are at least three and 2% of the last
# 250 ms of answers, the gateway's window is spent: the generation moves on (refusals of
# sends made before are ignored, whichever process reports them, and slots reserved at
# the old pace are void) and only a few probes go, at half the pace refused, halving
# every 50 ms (a spent fixed window refuses all until its end, and every refusal costs
# its caller a whole Retry-After), down to a sixteenth of the estimate. The first
# success of a probe says the window reopened: what the fleet delivered over the second
# before it is what a window admits (windows measured whole: that second is the window
# that was spent), and the pace restarts just under it, climbing back on a cubic curve
# (CUBIC): flat near the estimate, steeper beyond. A limiter that admits again at once
# (a token bucket) has no window to measure: what it admitted of the pace refused (over
# the last 250 ms before the cut, or since the pace was set if that is sooner) is the
# estimate when the second before the reopening says less (its callers may have slept a
# Retry-After, or sent at slower, earlier paces). A first window says little when it
# reopened at once (the bucket's burst spent) or, if nobody probed its end, when the
# fleet had sent for less than half a second before the cut: its second of history is
# mostly not yet there, and holds a token bucket's burst and a few refills where a fixed
# window's burst took the whole window. From there the pace doubles every 250 ms until
# refused again. Both shapes look alike until a pace above the estimate is tried, and
# the costs differ: a ramp costs a fixed window one more cut (its refusals, and callers
# asleep on their Retry-After into the next window); no ramp costs a token bucket most
# of its rate for seconds, as the cubic climbs from a fifth of it. (Seen with 4
# processes of 8 lanes each: every lane refused 0.2 s in and asleep for a second, so
# that no probe found the bucket open again at once.)
#
# The curve's clock runs only while the fleet uses the pace: time the timeline sat idle
# (nobody took the next slot when it came) moves the curve's origin on, so a pace never
# climbs while callers are away (all asleep on a Retry-After, or fewer than the pace
# needs) and come back to a burst at a pace nobody tried. (Capping the climb at twice
# what was delivered lately instead held it down after such a sleep: the pace stayed at
# the small first estimate, and what it delivered, always a second behind, kept it there
# for seconds.) For the same reason a slot is reserved at most 250 ms ahead: callers
# beyond that ask again later, so a pace raised reaches the sends within one doubling
# rather than after a long queue of slots taken at the old pace.
_LEARNED_GCRA_LUA: Final = """
local BUCKET, SLOTS, RECENT, SECOND = 10000, 110, 25, 100
local MIN_REFUSALS, CUT_SHARE, HEADROOM, PLATEAU, MIN_RATE = 3, 0.02, 0.97, 1.5, 2.0
local DOUBLING, HALVING, FLOOR_SHARE, QUICK_REOPEN = 0.25, 0.05, 1 / 16, 0.1  -- seconds
local PROMPT = 0.1  -- s: a reopening found this soon after a refused probe was probed
local SHORT_HISTORY = 0.5  -- s: a cut this soon after the first success measured little
local POLL = 100000  -- us: while spent, callers beyond the next probe ask again this late
local QUEUE = 250000  -- us: no slot is reserved further ahead than this
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local idx = math.floor(now / BUCKET)

local function add(key, n)
  local slot = idx % SLOTS
  if tonumber(redis.call('HGET', key, 't' .. slot) or '-1') == idx then
    redis.call('HINCRBY', key, 'n' .. slot, n)
  else
    redis.call('HSET', key, 't' .. slot, idx, 'n' .. slot, n)
  end
  redis.call('PEXPIRE', key, 5000)
end

local function recent(key, buckets)  -- the count over the last buckets (the filling one too)
  local raw = redis.call('HGETALL', key)
  local fields = {}
  for i = 1, #raw, 2 do fields[raw[i]] = tonumber(raw[i + 1]) end
  local total = 0
  for j = 0, buckets - 1 do
    local slot = (idx - j) % SLOTS
    if fields['t' .. slot] == idx - j then total = total + fields['n' .. slot] end
  end
  return total
end

local function history(key)  -- seconds since the oldest success of the last second
  local raw = redis.call('HGETALL', key)
  local fields = {}
  for i = 1, #raw, 2 do fields[raw[i]] = tonumber(raw[i + 1]) end
  for j = SECOND - 1, 0, -1 do
    local slot = (idx - j) % SLOTS
    if fields['t' .. slot] == idx - j and fields['n' .. slot] > 0 then
      return (j * BUCKET + now - idx * BUCKET) / 1e6
    end
  end
  return 0
end

local function delivered()  -- successes per second over the last second
  local seconds = ((SECOND - 1) * BUCKET + now - idx * BUCKET) / 1e6
  return recent(KEYS[4], SECOND) / seconds
end

local names = {'gen', 'w', 'start', 'epoch', 'spent', 'since', 'last', 'probe', 'floor', 'top',
  'seen', 'ramp', 'admitting', 'opened', 'history'}
local raw = redis.call('HMGET', KEYS[3], unpack(names))
local s = {}
for i, name in ipairs(names) do s[name] = tonumber(raw[i] or '0') end

local function pace()
  if s.spent == 1 then
    return math.max(s.floor, s.probe * 2 ^ (-(now - s.since) / 1e6 / HALVING))
  end
  if s.w <= 0 then return nil end
  local seconds = (now - s.epoch) / 1e6
  local p
  if s.ramp == 1 then
    p = s.start * 2 ^ (seconds / DOUBLING)
  else
    local x = seconds - PLATEAU
    p = s.w * (1 + (1 - s.start / s.w) / PLATEAU ^ 3 * x * x * x)
  end
  return math.max(MIN_RATE, p)
end

local function save()
  local fields = {}
  for _, name in ipairs(names) do
    table.insert(fields, name)
    table.insert(fields, string.format('%.17g', s[name]))
  end
  redis.call('HSET', KEYS[3], unpack(fields))
end

local cut = 0
local ok, refused, fresh_ok = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
if ok > 0 then add(KEYS[4], ok) end
if tonumber(ARGV[6]) == s.gen then
  if refused > 0 then add(KEYS[5], refused) end
  if s.spent == 1 and refused > 0 then s.last = now end
  if s.spent == 1 and fresh_ok > 0 then
    -- Reopened. The successes just reported are the new window's, not the spent one's.
    local w
    local probed = now - s.last <= PROMPT * 1e6
    if probed then
      local seconds = ((SECOND - 1) * BUCKET + now - idx * BUCKET) / 1e6
      w = (recent(KEYS[4], SECOND) - fresh_ok) / seconds
    else
      -- Nobody probed the spent window's end (its callers all slept a Retry-After): the
      -- second before the cut holds the window, and maybe the tail of the one before.
      w = s.seen
      if s.top > 0 then w = math.min(w, s.top) end  -- the pace refused was past it
    end
    local quick = now - s.since < QUICK_REOPEN * 1e6
    if quick and s.top > 0 then
      -- A limiter that admits again at once (a token bucket) was admitting, just before
      -- the cut, what it admits: the second before may have been slept through (its
      -- callers waited out a Retry-After), or spent at a ramp's slower paces.
      w = math.max(w, math.min(s.admitting, s.top))
    end
    w = math.max(MIN_RATE, w)
    -- The first window (the start was unpaced), if nobody probed its end: what the
    -- second before the cut held says what a window admits only if the fleet sent for
    -- most of that second.
    local short = (not probed) and s.history < SHORT_HISTORY
    s.ramp = (s.w <= 0 and (quick or short)) and 1 or 0
    s.w, s.start, s.epoch, s.spent, s.opened = w, HEADROOM * w, now, 0, now
    s.gen = s.gen + 1  -- refusals of the probes sent into the spent window: no news
    save()
    redis.call('DEL', KEYS[1], KEYS[5])
  elseif s.spent == 0 and refused > 0 then
    local refused_lately = recent(KEYS[5], RECENT)
    local admitted_lately = recent(KEYS[4], RECENT)
    local answers = refused_lately + admitted_lately
    if refused_lately >= MIN_REFUSALS and refused_lately >= CUT_SHARE * answers then
      local refused_pace = pace()
      local basis = refused_pace or delivered()  -- unpaced: what the burst delivered
      s.top = refused_pace or 0
      s.probe = math.max(MIN_RATE, basis / 2)
      s.floor = math.max(MIN_RATE, FLOOR_SHARE * (s.w > 0 and s.w or basis))
      s.seen = delivered()
      s.history = history(KEYS[4])
      -- What was admitted just before the cut, since the pace was last set at most.
      local span = math.min(RECENT, math.max(5, idx - math.floor(s.opened / BUCKET) + 1))
      s.admitting = recent(KEYS[4], span) / (((span - 1) * BUCKET + now - idx * BUCKET) / 1e6)
      s.spent, s.since, s.last, s.gen = 1, now, now, s.gen + 1
      cut = 1
      save()
      redis.call('DEL', KEYS[1], KEYS[5])
    end
  end
end
if s.w > 0 or s.spent == 1 then redis.call('PEXPIRE', KEYS[3], 3600000) end

local cool = redis.call('PTTL', KEYS[2])
if cool > 0 then return {1, cool * 1000, s.gen, 0, cut} end
local rate = pace()
if rate == nil then return {0, 0, s.gen, 0, cut} end
local milli = math.floor(rate * 1000)
if ARGV[3] == 'report' or (ARGV[3] == 'check' and tonumber(ARGV[8]) == s.gen) then
  return {0, 0, s.gen, milli, cut}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
  if s.spent == 0 and s.w > 0 then
    -- Nobody used the pace since tat (or since the curve began): its clock waits.
    s.epoch = s.epoch + now - math.max(tat, s.epoch)
    redis.call('HSET', KEYS[3], 'epoch', string.format('%.17g', s.epoch))
    rate = pace()
    milli = math.floor(rate * 1000)
  end
  tat = now
end
local interval = 1e6 / rate
local wait = tat - now - interval * (tonumber(ARGV[1]) - 1)
if wait < 0 then wait = 0 end
local limit = tonumber(ARGV[2])
if limit >= 0 and wait > limit then return {2, wait, s.gen, milli, cut} end
if s.spent == 1 and wait > interval then return {3, POLL, s.gen, milli, cut} end
if wait > QUEUE then return {3, wait - QUEUE / 2, s.gen, milli, cut} end
local new_tat = tat + interval
-- Kept as long as the pace: an idle spell is measured from it (see above).
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  math.ceil((new_tat - now) / 1000) + 3600000)
return {0, wait, s.gen, milli, cut}
"""

_SCRIPTS: Final = {
    "acquire": _ACQUIRE_LUA,
    "release": _RELEASE_LUA,
    "renew": _RENEW_LUA,
    "invalidate": _INVALIDATE_LUA,
    "gcra": _GCRA_LUA,
    "learned_gcra": _LEARNED_GCRA_LUA,
    "cool_down": _COOL_DOWN_LUA,
}

#: A Retry-After up to this says "too fast" (a pace's business); a longer one, "nothing
#: passes until then" (the cooldown's). As the client tells them apart.
_SHORT_RETRY_AFTER: Final = 1.0
#: The pace generation the current task's send went at (set by the learned acquire; the
#: client observes the answer in the same task).
_sent_at_generation: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "maxa_fleet_sent_at_generation", default=None
)

#: How long a refusal's report waits for the rest of its burst (one round trip for all).
_REPORT_DELAY: Final = 0.005

_GO: Final = 0
_COOLING: Final = 1
_TOO_LATE: Final = 2
_POLL: Final = 3  # learned pace: window spent, or the next slot far off: ask again later


def _check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInputError(name, f"must be a positive number, got {value!r}")


def default_key_prefix(credentials: Credentials) -> str:
    """``maxa:{<digest>}``: one prefix per account (client id, user, pid), none in clear."""
    material = "\0".join((credentials.client_id, credentials.username, credentials.pid))
    digest = hashlib.sha256(material.encode()).hexdigest()[:24]
    return f"maxa:{{{digest}}}"


def _redacted_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))


class _Unavailable(Exception):
    """Redis is down (or backing off): use the per-process fallback."""


class _Connection:
    """One Redis client and its scripts, bound to the event loop that created them."""

    def __init__(self, client: aioredis.Redis, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.scripts: dict[str, AsyncScript] = {
            name: client.register_script(source) for name, source in _SCRIPTS.items()
        }


class Fleet:
    """A Redis-backed token store and rate gate for one account.

    Args:
        redis_url: ``redis://[user:password@]host:port/db``, ``rediss://...`` or
            ``unix://...``. The connection is made on first use, in the running loop.
        credentials: the account; only its client id, user and pid (hashed) name the keys.
        rate_limit: the account's requests/second for the whole fleet (None: no cap; the
            shared 429 cooldown still applies). Keep it a little under the gateway's limit.
        burst: sends allowed back to back above the steady rate (1: none).
        key_prefix: the keys' prefix (default :func:`default_key_prefix`).
        lease_seconds: how long a refresh lease outlives a holder that stopped renewing
            it (crashed); the longest the fleet waits for a dead holder.
        poll_interval: how often a process waiting for another's refresh looks again.
        retry_after: seconds between attempts to reach Redis again after a failure.
        redis_timeout: connect and command timeout, seconds.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        credentials: Credentials,
        rate_limit: float | None = None,
        burst: int = 1,
        key_prefix: str | None = None,
        lease_seconds: float = 10.0,
        poll_interval: float = 0.025,
        retry_after: float = 5.0,
        redis_timeout: float = 1.0,
    ) -> None:
        if (
            not isinstance(redis_url, str)
            or urllib.parse.urlsplit(redis_url).scheme not in _SCHEMES
        ):
            # The URL is not echoed: it may carry a password.
            raise InvalidInputError("redis_url", "must start with redis://, rediss:// or unix://")
        if rate_limit is not None:
            _check_positive("rate_limit", rate_limit)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InvalidInputError("burst", f"must be an int >= 1, got {burst!r}")
        _check_positive("lease_seconds", lease_seconds)
        _check_positive("poll_interval", poll_interval)
        _check_positive("redis_timeout", redis_timeout)
        if retry_after != 0:
            _check_positive("retry_after", retry_after)
        if key_prefix is not None and (not isinstance(key_prefix, str) or not key_prefix.strip()):
            raise InvalidInputError("key_prefix", "must be a non-blank string")
        self._url = redis_url
        self.key_prefix = key_prefix or default_key_prefix(credentials)
        self.retry_after = retry_after
        self.redis_timeout = redis_timeout
        self._connection: _Connection | None = None
        self._down_until = 0.0
        self.degraded = False
        self.redis_errors = 0
        self.degradations = 0
        self.token_store = RedisTokenStore(
            self, lease_seconds=lease_seconds, poll_interval=poll_interval
        )
        self.rate_gate = RedisRateGate(self, rate_limit=rate_limit, burst=burst)

    def key(self, name: str) -> str:
        return f"{self.key_prefix}:{name}"

    def __repr__(self) -> str:
        return f"Fleet({_redacted_url(self._url)!r}, key_prefix={self.key_prefix!r})"

    def stats(self) -> dict[str, Any]:
        """Counters of this process's fleet traffic; no token, no credential."""
        store = self.token_store
        gate = self.rate_gate
        return {
            "degraded": self.degraded,
            "redis_errors": self.redis_errors,
            "degradations": self.degradations,
            "lease_waits": store.lease_waits,
            "lease_takeovers": store.lease_takeovers,
            "tokens_from_fleet": store.tokens_from_fleet,
            "rate_waits": gate.waits,
            "rate_wait_total": round(gate.wait_total, 6),
            "cooldowns": gate.cooldowns,
            "learned_pace": None if gate.pace is None else round(gate.pace, 1),
            "pace_cuts": gate.pace_cuts,
        }

    # ------------------------------------------------------------------ Redis access

    def _redis(self) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is None or connection.loop is not loop:
            # A client belongs to the loop that made it (the MaxaClient may have been
            # built outside any loop, or used by several asyncio.run calls in turn).
            client = aioredis.from_url(
                self._url,
                decode_responses=True,
                socket_timeout=self.redis_timeout,
                socket_connect_timeout=self.redis_timeout,
                retry=Retry(NoBackoff(), 1),  # one retry: a pooled connection may be stale
                health_check_interval=30,
            )
            connection = self._connection = _Connection(client, loop)
        return connection

    async def run(self, action: Callable[[_Connection], Awaitable[T]]) -> T:
        """Run ``action`` against Redis, or raise _Unavailable (and degrade) if it fails."""
        if self._down_until and time.monotonic() < self._down_until:
            raise _Unavailable
        try:
            result = await action(self._redis())
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed(exc)
            raise _Unavailable from exc
        if self.degraded:
            self.degraded = False
            self._down_until = 0.0
            log.info("Redis is reachable again; fleet mode resumed")
        return result

    async def script(self, name: str, keys: list[str], args: list[str | int]) -> Any:
        """Run one of this module's Lua scripts (EVALSHA, loaded again after a restart)."""

        async def action(connection: _Connection) -> Any:
            return await connection.scripts[name](keys=keys, args=args)

        return await self.run(action)

    def _failed(self, exc: BaseException) -> None:
        self.redis_errors += 1
        self._down_until = time.monotonic() + self.retry_after
        if not self.degraded:
            self.degraded = True
            self.degradations += 1
            log.warning(
                "Redis unavailable (%s: %s); fleet mode degraded to per-process token and "
                "rate limiting; retrying Redis every %.1fs",
                type(exc).__name__,
                str(exc)[:200],
                self.retry_after,
            )
        else:
            log.debug("Redis still unavailable (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        """Close the Redis connections (they reopen if the fleet is used again)."""
        await self.rate_gate.stop_reporting()
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - aclose is a coroutine
            running = None
        if connection.loop is running:
            with contextlib.suppress(TimeoutError, RedisError, OSError):
                await connection.client.aclose()


def _encode(token: Token) -> str:
    return orjson.dumps(
        {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "token_type": token.token_type,
            "scope": token.scope,
            "expires_at": token.expires_at,
            "lifetime": token.lifetime,
        }
    ).decode()


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError("not a string")


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def _decode(raw: str) -> Token | None:
    """The stored token, checked as a token from the gateway is (anything may have written
    the key); None, with a warning, if it cannot be used: the caller then grants anew."""
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        token = Token(
            access_token=_text(data["access_token"]),
            refresh_token=_optional_text(data["refresh_token"]),
            token_type=_text(data["token_type"]),
            scope=_optional_text(data["scope"]),
            expires_at=_seconds(data["expires_at"]),
            lifetime=_seconds(data["lifetime"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("the fleet's stored token is unreadable; ignoring it")
        return None
    problem = token_problem(token)
    if problem is not None:
        log.warning("the fleet's stored token is unusable (%s); ignoring it", problem)
        return None
    return token


class RedisTokenStore:
    """The fleet's current token in Redis, and a refresh lease so one process refreshes.

    The token (access *and* refresh token) is stored in clear in Redis: Redis must be
    trusted and access-controlled. On a Redis failure it serves the last token it saw
    from process memory and every process refreshes on its own (see :class:`Fleet`).
    """

    def __init__(self, fleet: Fleet, *, lease_seconds: float, poll_interval: float) -> None:
        self.fleet = fleet
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._token_key = fleet.key("token")
        self._lease_key = fleet.key("lease")
        self._mirror: Token | None = None
        self._refused = b""  # the digest of the last stored value found unusable
        self.lease_waits = 0  # refreshes that waited for another process's lease
        self.lease_takeovers = 0  # leases taken after a wait that brought no new token
        self.tokens_from_fleet = 0  # waits ended by another process's new token

    async def load(self) -> Token | None:
        try:
            raw = await self.fleet.run(lambda c: c.client.get(self._token_key))
        except _Unavailable:
            return self._mirror
        except UnicodeDecodeError:
            raw = ""  # bytes that are not UTF-8: as unreadable as any other garbage
        token = None
        if raw is not None:
            digest = hashlib.sha256(str(raw).encode()).digest()
            if digest != self._refused:  # an unusable token is warned about once
                token = _decode(str(raw))
                if token is None:
                    self._refused = digest
        self._mirror = token
        return token

    async def save(self, token: Token) -> None:
        self._mirror = token
        ttl_ms = math.floor((token.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return  # already expired: nothing worth sharing
        raw = _encode(token)
        with contextlib.suppress(_Unavailable):
            await self.fleet.run(lambda c: c.client.set(self._token_key, raw, px=ttl_ms))

    async def invalidate(self, access_token: str) -> None:
        if self._mirror is not None and self._mirror.access_token == access_token:
            self._mirror = None
        with contextlib.suppress(_Unavailable):
            await self.fleet.script("invalidate", [self._token_key], [access_token])

    @contextlib.asynccontextmanager
    async def refresh_lease(self) -> AsyncIterator[bool]:
        """Yields True to the one process that should grant; False once another process
        has stored a new token (use it). Waits while another live process holds it."""
        owner = secrets.token_hex(16)
        outcome = await self._acquire(owner)
        if outcome != "held":
            yield outcome == "local"
            return
        watchdog = asyncio.get_running_loop().create_task(self._renew(owner))
        try:
            yield True
        finally:
            watchdog.cancel()
            # wait(), not await: the watchdog's CancelledError must not pass for ours.
            await asyncio.wait([watchdog])
            with contextlib.suppress(_Unavailable):
                await self.fleet.script("release", [self._lease_key], [owner])

    async def _acquire(self, owner: str) -> str:
        """ "held": we hold the lease; "other": a new token arrived; "local": no Redis."""
        seen = "-"
        while True:
            try:
                acquired, version = await self.fleet.script(
                    "acquire", [self._lease_key, self._token_key], [owner, self._lease_ms, seen]
                )
            except _Unavailable:
                return "local"
            if int(acquired):
                if seen != "-":
                    self.lease_takeovers += 1
                return "held"
            if seen == "-":
                seen = str(version)
                self.lease_waits += 1
                log.debug("another process is refreshing the token; waiting for it")
            elif version and version != seen:
                self.tokens_from_fleet += 1
                return "other"
            await asyncio.sleep(self.poll_interval * random.uniform(0.8, 1.2))

    async def _renew(self, owner: str) -> None:
        period = self.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                kept = await self.fleet.script("renew", [self._lease_key], [owner, self._lease_ms])
            except _Unavailable:
                continue
            if not int(kept):
                log.debug("refresh lease lost (expired); another process may refresh too")
                return

    async def aclose(self) -> None:
        await self.fleet.aclose()


class RedisRateGate:
    """A requests/second budget and a 429 cooldown shared by every process of the fleet.

    ``acquire`` is one Redis round trip when the budget has room (two when it had to
    sleep for its slot: the cooldown is checked again before sending). On a Redis
    failure it lets everything through: each client's own limiter still applies.

    Without a ``rate_limit`` the fleet learns its shared pace from the gateway's answers
    (see ``_LEARNED_GCRA_LUA``): ``observe`` only counts, in process memory, and the
    counts ride along with the next ``acquire``'s round trip. Refusals are reported
    sooner, in one round trip of their own a moment later (the refused callers may all be
    waiting out a Retry-After, with no ``acquire`` to carry them), by a task that
    ``aclose`` ends.
    """

    def __init__(self, fleet: Fleet, *, rate_limit: float | None, burst: int) -> None:
        self.fleet = fleet
        self.rate_limit = rate_limit
        self.burst = burst
        self._interval_us = round(1e6 / rate_limit) if rate_limit else 0
        self._tolerance_us = self._interval_us * (burst - 1)
        self._keys = [fleet.key("gcra"), fleet.key("cooldown")]
        self._learned_keys = [
            *self._keys,
            fleet.key("pace"),
            fleet.key("admitted"),
            fleet.key("refused"),
        ]
        self.learns = rate_limit is None
        # Answers not yet reported to Redis, and the fleet's pace generation as last seen
        # (a refusal counts only if its send went at the pace in force: one cut per event).
        self._admitted = 0
        self._fresh_admitted = 0  # of sends made at the generation in force
        self._refused = 0
        self._generation = 0
        self._reporter: asyncio.Task[None] | None = None
        self.pace: float | None = None  # the fleet's learned pace as last seen (req/s)
        self.pace_cuts = 0  # cuts of the fleet's pace this process made
        self.waits = 0  # sends that waited for the shared budget or cooldown
        self.wait_total = 0.0
        self.cooldowns = 0  # fleet-wide pauses this process started or extended

    @property
    def learns_pace(self) -> bool:
        """True without a ``rate_limit`` while Redis answers: the fleet learns its pace,
        so each client's own pacer leaves refusals to it. While Redis is down (the gate
        lets everything through) each client's pacer finds its own pace again."""
        return self.learns and not self.fleet.degraded

    async def acquire(self, deadline: float | None) -> None:
        mode, slot_generation = "reserve", 0
        while True:
            left = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1e6))
            try:
                kind, micros, generation = await self._reserve(left, mode, slot_generation)
            except _Unavailable:
                return
            wait = micros / 1e6
            if kind == _GO:
                if wait <= 0:
                    return
                await self._sleep(wait)
                # A cooldown may have begun while we slept, or the learned pace been cut
                # (the slot was reserved at a pace refused since: take a new one).
                mode, slot_generation = "check", generation
                continue
            if kind == _POLL:
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                await self._sleep(wait * random.uniform(0.5, 1.0))
                mode = "reserve"
                continue
            if kind == _TOO_LATE:
                raise RateLimitedError(
                    "the fleet's requests/second budget leaves no room before the deadline",
                    retry_after=wait,
                    retryable=False,
                )
            if deadline is not None and time.monotonic() + wait > deadline:
                raise RateLimitedError(
                    f"the gateway asked the fleet to pause {wait:.1f}s, longer than this "
                    "call's time left",
                    retry_after=wait,
                    retryable=False,
                )
            await self._sleep(wait)
            mode = "reserve"  # any slot we had fell inside the pause: take a new one

    async def _reserve(self, left: int, mode: str, slot_generation: int) -> tuple[int, int, int]:
        """One round trip: (kind, microseconds, the pace generation) for a send (``mode``
        "reserve"), for one whose slot, reserved at ``slot_generation``, has come
        ("check"), or none ("report": counts only); raises _Unavailable."""
        if not self.learns:
            check_only = int(mode != "reserve")
            kind, micros = await self.fleet.script(
                "gcra", self._keys, [self._interval_us, self._tolerance_us, left, check_only]
            )
            return int(kind), int(micros), 0
        # The counts go now (and are gone if Redis fails: the gate then lets everything
        # through); answers arriving meanwhile wait for the next round trip.
        admitted, fresh, refused = self._admitted, self._fresh_admitted, self._refused
        self._admitted = self._fresh_admitted = self._refused = 0
        kind, micros, generation, milli_rps, cut = await self.fleet.script(
            "learned_gcra",
            self._learned_keys,
            [self.burst, left, mode, admitted, refused, self._generation, fresh, slot_generation],
        )
        if int(generation) != self._generation:
            self._generation = int(generation)
            # Answers to sends made at an older pace: reacted to already.
            self._refused = self._fresh_admitted = 0
        self.pace_cuts += int(cut)
        if int(kind) == _GO:
            self.pace = int(milli_rps) / 1000 or None
            if mode != "report":
                # The send about to go, at this pace: observe() tells its answer apart.
                _sent_at_generation.set(self._generation)
        return int(kind), int(micros), int(generation)

    async def _sleep(self, seconds: float) -> None:
        self.waits += 1
        self.wait_total += seconds
        await asyncio.sleep(seconds)

    def observe(self, rate_limited: bool, retry_after: float | None) -> None:
        """Count an answer toward the learned pace (a fixed budget learns nothing).

        A long Retry-After is the cooldown's (``cool_down``), not a pace's; a refusal of
        a send made before the fleet's last cut says nothing new."""
        if not self.learns:
            return
        sent_at = _sent_at_generation.get()
        fresh = sent_at is None or sent_at == self._generation
        if not rate_limited:
            self._admitted += 1
            self._fresh_admitted += fresh
        elif fresh and (retry_after is None or retry_after <= _SHORT_RETRY_AFTER):
            self._refused += 1
            self._report_soon()

    def _report_soon(self) -> None:
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.get_running_loop().create_task(self._report())

    async def _report(self) -> None:
        await asyncio.sleep(_REPORT_DELAY)  # the burst's other refusals join this report
        if self._admitted or self._refused:
            with contextlib.suppress(_Unavailable):
                await self._reserve(-1, "report", 0)

    async def cool_down(self, seconds: float) -> None:
        ms = math.ceil(seconds * 1000)
        if ms <= 0:
            return
        with contextlib.suppress(_Unavailable):
            extended = await self.fleet.script("cool_down", [self._keys[1], self._keys[0]], [ms])
            if int(extended):
                self.cooldowns += 1

    async def stop_reporting(self) -> None:
        """End a pending report of refusals (the fleet is closing)."""
        reporter, self._reporter = self._reporter, None
        if reporter is not None and not reporter.done():
            reporter.cancel()
            if reporter.get_loop() is asyncio.get_running_loop():
                # wait(), not await: the reporter's CancelledError must not pass for ours.
                await asyncio.wait([reporter])

    async def aclose(self) -> None:
        await self.fleet.aclose()
