"""The shared counter store: Redis, updated by Lua scripts so that every step is atomic.

Every sidecar of a namespace admits and settles its requests against the same counters
with one script call each (``EVALSHA``; redis-py loads a script the server does not know
yet and retries). A script runs alone in Redis: between reading the counters and adding a
request to them no other sidecar can slip in, which is what keeps concurrent requests from
overspending. The scripts do what :class:`~.memory_store.MemoryStore` does in Python; keys,
units and expiries are those of :mod:`~aiguillage.sidecar.limits.keys`.

Calls are short (``timeout`` seconds, 0.1 by default, for connecting and for each answer)
and never retried here: a store that does not answer in time is :class:`StoreUnavailable`,
and :mod:`~aiguillage.sidecar.limits.shared` decides what happens then. One Redis server
(or a primary) is assumed: a script's keys must live on one node, so Redis Cluster is not
supported.

The password, when there is one, comes from the credentials directory (never from the URL
in the config). ``redis`` is imported only when a config names a shared store.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiguillage.sidecar.limits import keys
from aiguillage.sidecar.limits.errors import StoreUnavailable
from aiguillage.sidecar.limits.store import Admission, Levels, Settlement

if TYPE_CHECKING:
    import redis.asyncio as aioredis

DEFAULT_TIMEOUT = 0.1

# KEYS: per budget counter its hash and its leases; per rate counter this minute's key and
# the previous minute's.
# ARGV: budgets, rates, now, weight, lease, lease_until, rate_ttl; per budget: reserve,
# expire_at; per rate: amount; checks, per check: kind ("b"/"r"), counter (1-based), ceiling.
# Answers: {admitted, failed check (0-based, -1: none), spent1, reserved1, ..., prev1, cur1, ...}
ADMIT = """
local nb, nr = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, weight = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease, lease_until, rate_ttl = ARGV[5], ARGV[6], ARGV[7]
local a = 8
local spent, reserved, reserve, reserve_s, expire = {}, {}, {}, {}, {}
for i = 1, nb do
  local key, leases = KEYS[2 * i - 1], KEYS[2 * i]
  local ended = redis.call('ZRANGEBYSCORE', leases, '-inf', now)
  for _, member in ipairs(ended) do
    local amount = tonumber(string.match(member, ':(%d+)$')) or 0
    if redis.call('HINCRBY', key, 'reserved', -amount) < 0 then
      redis.call('HSET', key, 'reserved', 0)
    end
    redis.call('ZREM', leases, member)
  end
  local values = redis.call('HMGET', key, 'spent', 'reserved')
  spent[i], reserved[i] = tonumber(values[1]) or 0, tonumber(values[2]) or 0
  reserve_s[i], expire[i] = ARGV[a], ARGV[a + 1]
  reserve[i] = tonumber(reserve_s[i])
  a = a + 2
end
local prev, cur, amount = {}, {}, {}
for j = 1, nr do
  cur[j] = tonumber(redis.call('GET', KEYS[2 * nb + 2 * j - 1])) or 0
  prev[j] = tonumber(redis.call('GET', KEYS[2 * nb + 2 * j])) or 0
  amount[j] = ARGV[a]
  a = a + 1
end
local failed = -1
local nc = tonumber(ARGV[a])
a = a + 1
for c = 1, nc do
  local kind, i, ceiling = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local fits
  if kind == 'b' then
    fits = spent[i] + reserved[i] + reserve[i] <= ceiling
  else
    fits = prev[i] * weight + cur[i] + tonumber(amount[i]) <= ceiling
  end
  if not fits then
    failed = c - 1
    break
  end
end
if failed < 0 then
  for i = 1, nb do
    local key, leases = KEYS[2 * i - 1], KEYS[2 * i]
    if reserve[i] > 0 then
      redis.call('HINCRBY', key, 'reserved', reserve_s[i])
      redis.call('ZADD', leases, lease_until, lease .. ':' .. reserve_s[i])
      redis.call('EXPIREAT', leases, expire[i])
      redis.call('EXPIREAT', key, expire[i])
    end
  end
  for j = 1, nr do
    local key = KEYS[2 * nb + 2 * j - 1]
    redis.call('INCRBY', key, amount[j])
    redis.call('EXPIRE', key, rate_ttl)
  end
end
local out = {failed < 0 and 1 or 0, failed}
for i = 1, nb do
  out[#out + 1] = spent[i]
  out[#out + 1] = reserved[i]
end
for j = 1, nr do
  out[#out + 1] = prev[j]
  out[#out + 1] = cur[j]
end
return out
"""

# KEYS: per budget counter its hash and its leases; then the token counters to correct.
# ARGV: budgets, lease, release (1/0), cost; per budget: reserve, expire_at; per token
# counter: delta. Answers each budget counter's spent after the settlement.
SETTLE = """
local nb = tonumber(ARGV[1])
local lease, release, cost = ARGV[2], ARGV[3], ARGV[4]
local a = 5
local out = {}
for i = 1, nb do
  local key, leases = KEYS[2 * i - 1], KEYS[2 * i]
  local reserve, expire = ARGV[a], ARGV[a + 1]
  a = a + 2
  if release == '1' and tonumber(reserve) > 0 then
    if redis.call('ZREM', leases, lease .. ':' .. reserve) == 1 then
      if redis.call('HINCRBY', key, 'reserved', -tonumber(reserve)) < 0 then
        redis.call('HSET', key, 'reserved', 0)
      end
    end
  end
  out[i] = redis.call('HINCRBY', key, 'spent', cost)
  redis.call('EXPIREAT', key, expire)
end
for k = 2 * nb + 1, #KEYS do
  if redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('INCRBY', KEYS[k], ARGV[a])
  end
  a = a + 1
end
return out
"""


class RedisStore:
    """Counters in one Redis server, reached at ``url`` (``SharedStore.url``)."""

    def __init__(self, url: str, password: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self._errors: tuple[type[BaseException], ...] = (aioredis.RedisError, OSError)
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # Never retried here: a dead store must not stall requests (see shared.py).
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._admit = self._client.register_script(ADMIT)
        self._settle = self._client.register_script(SETTLE)
        self._timeout = timeout

    async def admit(self, admission: Admission) -> Levels:
        key_list: list[str] = []
        args: list[Any] = [
            len(admission.budgets),
            len(admission.rates),
            repr(admission.now),
            repr(admission.weight),
            admission.lease,
            repr(admission.lease_until),
            keys.RATE_TTL_SECONDS,
        ]
        for b in admission.budgets:
            key_list += (b.key, keys.leases_key(b.key))
            args += (b.reserve, b.expire_at)
        for r in admission.rates:
            key_list += (r.key, r.previous)
            args.append(r.amount)
        args.append(len(admission.checks))
        for c in admission.checks:
            args += ("b" if c.kind == "budget" else "r", c.counter + 1, c.ceiling)
        reply = await self._call(self._admit, key_list, args)
        nb = len(admission.budgets)
        values = [int(v) for v in reply]
        failed = values[1]
        return Levels(
            admitted=values[0] == 1,
            failed=None if failed < 0 else failed,
            budgets=tuple((values[2 + 2 * i], values[3 + 2 * i]) for i in range(nb)),
            rates=tuple(
                (values[2 + 2 * nb + 2 * j], values[3 + 2 * nb + 2 * j])
                for j in range(len(admission.rates))
            ),
        )

    async def settle(self, settlement: Settlement) -> tuple[int, ...]:
        key_list: list[str] = []
        args: list[Any] = [
            len(settlement.budgets),
            settlement.lease,
            1 if settlement.release else 0,
            settlement.cost,
        ]
        for b in settlement.budgets:
            key_list += (b.key, keys.leases_key(b.key))
            args += (b.reserve, b.expire_at)
        for key, delta in settlement.tokens:
            key_list.append(key)
            args.append(delta)
        reply = await self._call(self._settle, key_list, args)
        return tuple(int(v) for v in reply)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except self._errors as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def _call(self, script: Any, key_list: list[str], args: list[Any]) -> list[Any]:
        try:
            reply = await script(keys=key_list, args=args)
        except self._errors as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        if not isinstance(reply, list):
            raise StoreUnavailable(f"unexpected script answer of type {type(reply).__name__}")
        return reply

    async def close(self) -> None:
        with contextlib.suppress(*self._errors):
            await self._client.aclose()
