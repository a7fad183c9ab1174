"""The fleet: what the clients of one API and token share through Redis.

Processes that use the same API with the same token share its quota and its capacity.
With ``SegmentsClient(fleet="redis://...")`` they share, through one Redis:

- **the quota** (``FleetQuota``): ``rate_limit=R`` is R requests a second for the whole
  fleet, one GCRA (a token bucket kept as a theoretical arrival time) updated by one
  atomic script. A process leases a small batch of start times at a time and spends them
  locally, so Redis is asked about once per batch, not once per request;
- **in-flight slots** (``FleetSlots``): a counting semaphore whose members hold leases
  that expire unless renewed, shared max-min fairly, so that a process killed with
  SIGKILL gives its slots back within seconds;
- **the retry budget**: spent and refunded locally, the difference sent to Redis now
  and then, so an outage sees one budget's worth of retries, not one per process;
- **the adaptive limit** (``FleetLimit``): a refusal that lowers one member's ``"auto"``
  limit lowers every member's, heard within a twentieth of a second while they are busy;
  each member keeps an even share of what the members learnt in flight; against a quota,
  the paced members keep one pace for the fleet in Redis, moved by what each learns,
  and start their requests on one GCRA at that pace, leased as the quota's are, so that
  they share it by demand (each at most one and a half even shares); and the share of
  members that leave goes to those that stay.

Redis is never a single point of failure (``Link``): every command has a short timeout,
and one that fails opens a circuit: the clients go on with their own flow control (one
WARNING), a background probe now and then sees whether Redis is back (one WARNING more),
and no call ever fails or hangs because of Redis. Keys are derived from the API's origin
and a SHA-256 over it and the token; neither the token nor the URL's password is stored,
logged or shown. The decisions (how much to lease, when to renew, the circuit) are pure,
in ``_sharing.py``; this module only carries them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import math
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import yarl

from ._flow import MIN_RATE, Flow, Gate, RateLimit, rate_burst
from ._retry import RetryBudget
from ._sharing import (
    HEAR_WITHIN,
    LEASE_TTL,
    MEMBER_SECONDS,
    RENEW_EVERY,
    Circuit,
    Membership,
    QuotaShape,
    RateSlots,
    RefusalNews,
    capped_start,
    lease_size,
    pace_report,
)
from ._transport import _LoopEnd

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [
    "Fleet",
    "FleetLimit",
    "FleetQuota",
    "FleetSlots",
    "Link",
    "fleet_key",
    "open_fleet",
    "public_url",
]

logger: Final = logging.getLogger("segments_async")

#: Every Redis command (connecting included) gets this long; past it, Redis counts as
#: unavailable. Loopback or a LAN answers in well under a millisecond, but the time is
#: the event loop's: a stall of this process counts too, and one that is taken for Redis
#: failing sends every member off on its own pace. A full garbage collection while other
#: workers hold the CPU stalls one for 100-150 ms (four workers starting together on two
#: CPUs); what a longer timeout costs, a Redis that never answers costs once per outage.
COMMAND_TIMEOUT: Final = 0.5
#: The retry budget's state is forgotten after this long without a retry or a refund.
_BUDGET_KEEP_SECONDS: Final = 600
#: While the budget is below capacity or has changes Redis has not heard of, they are
#: sent this often, or as soon as this many tokens were spent here (five retries).
_BUDGET_SYNC_EVERY: Final = 0.25
_BUDGET_SYNC_SPENT: Final = 25
#: What a semaphore member's gate allows while Redis is unavailable: no fleet limit.
_UNBOUNDED: Final = 1 << 30

_SCHEMES: Final = ("redis", "rediss", "unix")
_INSTALL_HINT: Final = "pip install 'segments-async[fleet]'"

# --------------------------------------------------------------------------- the scripts

#: The quota: a GCRA whose theoretical arrival time (TAT, KEYS[1]) is kept in
#: microseconds of Redis's own clock, so that the members' clocks never matter. A lease
#: of ``count`` slots starts at the TAT, or now if that is past, and moves the TAT past
#: its last slot. The members that leased in
#: the last ``MEMBER_SECONDS`` (KEYS[2], by expiry) are counted: without Redis, each
#: keeps to its share. Numbers go back as strings: Lua's ``tostring`` would round them
#: to 14 digits. Without a TAT (none yet, idle for a second, or lost: Redis restarted
#: empty or was flushed), it starts no earlier than ARGV[5] (Redis's microseconds; 0:
#: now): after the last slot the member holds, and after a loss where the member expects
#: the lost TAT to be (``FleetQuota._lease_args``): the slots the members still hold
#: reach that far, and must not be leased a second time.
QUOTA_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local interval = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[5])
local first = math.max(tat, now)
local after = first + count * interval
redis.call('SET', KEYS[1], string.format('%.0f', after),
           'PX', math.floor((after - now) / 1000) + 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[2], math.floor(tonumber(ARGV[4]) / 1000))
return {string.format('%.0f', first), string.format('%.0f', now), redis.call('ZCARD', KEYS[2])}
"""


#: The retry budget: add the change (spent: negative, refunded: positive), within
#: [0, capacity]. A fleet's first change starts from the member's own count before it
#: (ARGV[4]): full at the start, and after Redis lost the count (restarted empty,
#: flushed) what the fleet had when this member last heard, not a full budget again.
BUDGET_SCRIPT: Final = """
local capacity = tonumber(ARGV[2])
local tokens = tonumber(redis.call('GET', KEYS[1]) or ARGV[4])
tokens = math.max(0, math.min(capacity, tokens + tonumber(ARGV[1])))
redis.call('SET', KEYS[1], tokens, 'EX', ARGV[3])
return tokens
"""

#: The in-flight slots. KEYS: members by lease expiry (ms), their wants, what each holds.
#: A member says what it wants and has in use; expired members are dropped first (their
#: slots go back). Its fair share is max-min fair: members wanting less than an equal
#: split get what they want, the others split the rest, the remainder of the split going
#: round (another member each second). It is allotted its share, but no more than the
#: others leave free, and is recorded as holding at least what it has in use.
SLOTS_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local me = ARGV[1]
local want = tonumber(ARGV[2])
local in_use = tonumber(ARGV[3])
local capacity = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
if want == 0 and in_use == 0 then
  redis.call('ZREM', KEYS[1], me)
  redis.call('HDEL', KEYS[2], me)
  redis.call('HDEL', KEYS[3], me)
  return {0, 0}
end
redis.call('ZADD', KEYS[1], now + ttl, me)
redis.call('HSET', KEYS[2], me, want)
local others = {}
local held = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= me then
    table.insert(others, {tonumber(redis.call('HGET', KEYS[2], id) or '0'), id})
    held = held + tonumber(redis.call('HGET', KEYS[3], id) or '0')
  end
end
table.sort(others, function(a, b) return a[1] < b[1] end)
local remaining = capacity
local unfilled = #others + 1
local sharing = {me}
for _, other in ipairs(others) do
  if #sharing > 1 or other[1] * unfilled > remaining then
    table.insert(sharing, other[2])
  else
    remaining = remaining - other[1]
    unfilled = unfilled - 1
  end
end
local share = math.floor(remaining / #sharing)
table.sort(sharing)
for index, id in ipairs(sharing) do
  if id == me and (index + clock[1]) % #sharing < remaining - share * #sharing then
    share = share + 1
  end
end
local allotted = math.max(0, math.min(want, share, capacity - held))
redis.call('HSET', KEYS[3], me, math.max(allotted, in_use))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], 2 * ttl) end
return {allotted, share}
"""

#: The fleet's refusals, and who limits itself with them. KEYS[1]: a hash of how many
#: refusals were news, when the last was told (ms) and the fleet's pace (requests per
#: second, while a member paces); KEYS[2]: the members, by when they were last heard (ms);
#: KEYS[3]: each member's limit; KEYS[4]: the paced members. ARGV: the member, how long
#: ago the request refused here was sent (ms; -1: none to tell), how late a request may be
#: sent after the last refusal and still be the same overload (ms), how long a member
#: counts after it was last heard (ms; 0: it leaves now, and only it), how long to keep
#: the count (s), its limit, what it tells of the pace and how (``_sharing.PaceReport``:
#: 0 not paced, 1 a change to add, 2 joining with an estimate of its own to take if
#: larger, 3 joining with a share to add), the slowest pace. The answer: the count,
#: whether this one was counted, the members, the sum of their limits, the members paced
#: and the fleet's pace (a string: Redis would truncate it).
REFUSALS_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local sent_ago = tonumber(ARGV[2])
local mine = 0
if sent_ago >= 0 then
  local told = redis.call('HGET', KEYS[1], 'told')
  if not told or now - sent_ago > tonumber(told) + tonumber(ARGV[3]) then
    redis.call('HINCRBY', KEYS[1], 'count', 1)
    redis.call('HSET', KEYS[1], 'told', string.format('%.0f', now))
    mine = 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
local keep = tonumber(ARGV[4])
if keep > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - keep)) do
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
  end
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[6])
  for i = 2, 3 do redis.call('PEXPIRE', KEYS[i], keep) end
else
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
local pace = tonumber(redis.call('HGET', KEYS[1], 'pace') or '0')
local told, how = tonumber(ARGV[7]), tonumber(ARGV[8])
if keep > 0 and how > 0 then
  redis.call('HSET', KEYS[4], ARGV[1], 1)
  redis.call('PEXPIRE', KEYS[4], keep)
  if how == 2 then pace = math.max(pace, told) else pace = pace + told end
  pace = math.max(pace, tonumber(ARGV[9]))
else
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local paced = redis.call('HLEN', KEYS[4])
if paced > 0 then
  redis.call('HSET', KEYS[1], 'pace', string.format('%.6f', pace))
else
  redis.call('HDEL', KEYS[1], 'pace')
  pace = 0
end
local limits = 0
for _, limit in ipairs(redis.call('HVALS', KEYS[3])) do limits = limits + tonumber(limit) end
return {tonumber(redis.call('HGET', KEYS[1], 'count') or '0'), mine,
  redis.call('ZCARD', KEYS[2]), limits, paced, string.format('%.6f', pace)}
"""
#: The count of refusals is forgotten after this long without one told or heard.
_REFUSALS_KEEP_SECONDS: Final = 600

#: Around every script (``Link.script``): the generation of the fleet's state, a key
#: (the last of KEYS) that the first script to find it missing sets to Redis's clock, kept
#: while any script runs. A Redis that restarts empty, or is flushed, loses every key at
#: once: the generation changes, and a member that heard another one knows the counts,
#: members, pace and quota it heard of are gone, not changed (``Link.run``). The caller
#: says which generation it heard last (the last of ARGV; "": none yet): the script runs
#: only in that one (what it would tell, worked out from the state before, is stale:
#: a change of pace added to nothing, a member counted among the paced with no pace).
#: The answer: the generation, then the script's own (none if it did not run).
GENERATION_SCRIPT: Final = """
local generation = redis.call('GET', KEYS[#KEYS])
if not generation then
  local clock = redis.call('TIME')
  generation = clock[1] .. string.format('%06d', tonumber(clock[2]))
end
redis.call('SET', KEYS[#KEYS], generation, 'EX', {keep})
local heard = ARGV[#ARGV]
if heard ~= '' and heard ~= generation then
  return {{generation}}
end
local function script()
{script}
end
return {{generation, script()}}
"""
#: The generation is forgotten after this long without a script run (longer than any
#: of the fleet's state is kept).
_GENERATION_KEEP_SECONDS: Final = 3600

# --------------------------------------------------------------------------- configuration


def fleet_url_from(fleet: object) -> str | None:
    """The ``fleet`` argument, or ``$SEGMENTS_FLEET_URL``; None (or "") for no fleet."""
    if fleet is None:
        fleet = os.environ.get("SEGMENTS_FLEET_URL") or None
    if fleet is None or fleet == "":
        return None
    if not isinstance(fleet, str):
        kind = type(fleet).__name__
        del fleet  # bytes could hold a password: out of the frame before the error
        raise TypeError(f"fleet must be a Redis URL (a str) or None, got {kind}")
    return fleet


def public_url(url: str) -> str:
    """``url`` without its password (in the userinfo or as a ``password`` parameter)."""
    parsed = yarl.URL(url)
    return str(parsed.with_password(None).without_query_params("password"))


def _usable(url: str) -> bool:
    try:
        parsed = yarl.URL(url)
    except ValueError:
        return False
    return parsed.scheme in _SCHEMES and bool(parsed.host or parsed.path.strip("/"))


def fleet_key(base_url: str, token: str) -> str:
    """The prefix of the fleet's keys: the API's origin and a SHA-256 over it and the token.

    The origin stays readable (which API a key is about); the digest tells tokens apart
    without storing one. Braces make it a Redis Cluster hash tag: a script's keys share a
    slot.
    """
    origin = yarl.URL(base_url).origin()
    digest = hashlib.sha256(f"segments_async fleet\n{origin}\n{token}".encode()).hexdigest()
    return f"segments_async:{origin}:{{{digest[:40]}}}"


def open_fleet(fleet: object, base_url: str, token: str) -> Fleet | None:
    """The fleet that ``fleet`` (or ``$SEGMENTS_FLEET_URL``) names, or None.

    Nothing is sent yet: the connection is made by the first command that needs it.
    Neither the URL's password nor the token is in any error raised here, nor in the
    locals of the frames it passes through (error trackers record those).
    """
    try:
        url = fleet_url_from(fleet)
        if url is None:
            return None
        _require_redis()
        client = _redis_client(url) if _usable(url) else None
        where = public_url(url) if client is not None else ""
        key = fleet_key(base_url, token)
    finally:
        del fleet, token
        url = None
    if client is None:
        raise ValueError(
            "fleet must be a Redis URL such as 'redis://host:6379/0' "
            "(redis://, rediss:// or unix://)"
        )
    return Fleet(Link(client, where, key), key)


def _require_redis() -> None:
    if importlib.util.find_spec("redis") is None:
        raise ImportError(f"fleet= needs redis-py: {_INSTALL_HINT}", name="redis")


def _redis_client(url: str) -> redis.asyncio.Redis | None:
    """A client of ``url`` (no connection yet), or None if redis-py cannot read it."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    try:
        return redis.asyncio.Redis.from_url(
            url,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
            # Our own timeout and circuit decide; redis-py's retries would add waits.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
    except (ValueError, TypeError):
        return None  # raised by the caller, without this frame (it holds the URL)


# --------------------------------------------------------------------------- the link


class Link:
    """The connection to Redis, with a timeout on every command and a circuit.

    ``run`` returns the script's answer, or None when Redis is unavailable: then the
    caller uses its own flow control. A failure opens the circuit (one WARNING); while
    it is open nothing is sent on a caller's behalf, and a background probe now and then
    sees whether Redis is back (one WARNING when it is).

    Given the fleet's ``key``, it also sees Redis lose the fleet's state (restarted empty,
    flushed: ``GENERATION_SCRIPT``), with or without an outage between: the answer that
    shows it is None too, and every part told with ``on_lost`` forgets what it heard, so
    that a count that went back to zero, or members that seem to have left, are not
    taken for news.

    Redis's connections belong to the event loop that made them, as the client's pool
    does: when that loop shuts down they are closed on it, and the next loop gets new
    ones (``asyncio.run()`` per call works). Meanwhile another loop gets no Redis (the
    transport then says why).
    """

    __slots__ = (
        "_circuit",
        "_errors",
        "_generation",
        "_generation_key",
        "_loop",
        "_loop_end",
        "_on_lost",
        "_probe",
        "_probe_script",
        "_redis",
        "where",
    )

    def __init__(self, client: redis.asyncio.Redis, where: str, key: str | None = None) -> None:
        import redis.exceptions

        self._redis = client
        self.where = where
        self._generation_key = None if key is None else f"{key}:generation"
        self._generation: bytes | None = None  # as last heard (None: not yet)
        self._on_lost: list[Callable[[], None]] = []
        self._probe_script = None if key is None else self.script("return 0")
        self._circuit = Circuit()
        self._probe: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_end: _LoopEnd | None = None
        # What a command may raise when Redis is down, slow or refuses: never the caller's.
        self._errors = (OSError, TimeoutError, redis.exceptions.RedisError)

    def __repr__(self) -> str:
        return f"<Link {self.where} {'up' if self._circuit.up else 'down'}>"

    @property
    def up(self) -> bool:
        """Whether Redis is believed reachable."""
        return self._circuit.up

    def available(self) -> bool:
        """Whether to ask Redis now; while it is down, start a probe when one is due."""
        if not self._bind():
            return False
        circuit = self._circuit
        if circuit.up:
            return True
        loop = asyncio.get_running_loop()
        if circuit.probe_due(loop.time()) and (self._probe is None or self._probe.done()):
            self._probe = loop.create_task(self._ping())
        return False

    def _bind(self) -> bool:
        """Use Redis from the running loop; False while another loop that runs holds it."""
        running = asyncio.get_running_loop()
        loop = self._loop
        if loop is running:
            return True
        if loop is not None and not loop.is_closed():
            return False
        if loop is not None:  # closed without shutting down: its connections are dead
            self._redis = self._fresh()
        self._loop = running
        self._probe = None
        self._loop_end = _LoopEnd(self._close_at_loop_end)
        return True

    def _fresh(self) -> redis.asyncio.Redis:
        """A client with a new, empty pool of the same settings (no connection yet)."""
        pool = self._redis.connection_pool
        return type(self._redis)(
            connection_pool=type(pool)(
                connection_class=pool.connection_class,
                max_connections=pool.max_connections,
                **pool.connection_kwargs,
            )
        )

    async def _close_at_loop_end(self) -> None:
        """The loop shuts down: close its connections on it; the next loop opens new ones."""
        self._loop_end = None
        await _cancel(self._probe)
        client, self._redis, self._loop = self._redis, self._fresh(), None
        await client.aclose(close_connection_pool=True)

    def abandon(self) -> None:
        """The client was garbage-collected unclosed: close the connections, not awaiting."""
        if self._loop_end is not None:
            self._loop_end.cancel()
            self._loop_end = None
        pool = self._redis.connection_pool
        held = [
            *getattr(pool, "_available_connections", ()),
            *getattr(pool, "_in_use_connections", ()),
        ]
        for connection in held:
            connection._close()  # what redis-py's own finalizer does, without its warning

    def script(self, source: str) -> Callable[..., Awaitable[Any]]:
        """``source`` registered with redis-py (EVALSHA, loaded again after a restart),
        within ``GENERATION_SCRIPT`` if the fleet's state is watched."""
        if self._generation_key is not None:
            source = GENERATION_SCRIPT.format(keep=_GENERATION_KEEP_SECONDS, script=source)
        return self._redis.register_script(source)

    def on_lost(self, forget: Callable[[], None]) -> None:
        """Call ``forget`` when Redis is found to have lost the fleet's state."""
        self._on_lost.append(forget)

    async def run(
        self, script: Callable[..., Awaitable[Any]], keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        """The script's answer, or None if Redis is unavailable or too slow, or lost the
        fleet's state since the caller last heard it (what the caller sent was of the
        state before)."""
        if not self.available():
            return None
        _, answer = await self._send(script, keys, args)
        return answer

    async def _send(
        self, script: Callable[..., Awaitable[Any]], keys: Sequence[str], args: Sequence[object]
    ) -> tuple[bool, Any]:
        """Whether Redis ran the script (or answered it did not, since it lost the fleet's
        state), and ``run``'s answer."""
        generation, watched = self._generation, self._generation_key
        if watched is not None:
            keys, args = (*keys, watched), (*args, generation or b"")
        task = asyncio.current_task()
        cancels = 0 if task is None else task.cancelling()
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                answer = await script(keys=keys, args=args, client=self._redis)
        except self._errors as error:
            self._failed(error)
            return False, None
        if task is not None and task.cancelling() > cancels:
            # redis-py may finish a command whose task was cancelled meanwhile, and return
            # its answer as if nothing happened: the cancellation must go on.
            raise asyncio.CancelledError
        if watched is None:
            return True, answer
        heard, answer = answer[0], answer[1] if len(answer) > 1 else None
        known = self._generation
        if heard == known:
            # None if another answer showed the loss while this one was on its way.
            return True, answer if generation in (known, None) else None
        if heard == generation:
            return True, None  # of the state before a loss another answer showed meanwhile
        self._generation = heard
        if known is None:
            return True, answer  # the first answer
        self._lost()
        return True, None

    def _lost(self) -> None:
        logger.info(
            "fleet: Redis at %s lost the fleet's state (restarted or flushed); the members"
            " share it again from what each has",
            self.where,
        )
        for forget in self._on_lost:
            forget()

    async def _ping(self) -> None:
        """Whether Redis is back: a PING, or, with the fleet's state watched, a script that
        writes (its generation), as the parts' do: a Redis that answers PING but refuses
        them (a read-only replica, an ACL without EVALSHA) is not back."""
        try:
            if self._probe_script is None:
                async with asyncio.timeout(COMMAND_TIMEOUT):
                    await self._redis.ping()
                back = True
            else:
                back, _ = await self._send(self._probe_script, (), ())
        except self._errors as error:
            self._failed(error)
        else:
            if back and self._circuit.recovered():
                logger.warning(
                    "fleet: Redis at %s is back; flow control is shared again", self.where
                )
        finally:
            self._probe = None

    def _failed(self, error: BaseException) -> None:
        if self._circuit.failed(asyncio.get_running_loop().time()):
            logger.warning(
                "fleet: Redis at %s is unavailable (%s); each client limits its own flow "
                "until it is back",
                self.where,
                self._describe(error),
            )

    def _describe(self, error: BaseException) -> str:
        text = str(error) or "no answer"
        password = self._redis.connection_pool.connection_kwargs.get("password")
        if password:
            text = text.replace(str(password), "***")
        return f"{type(error).__name__}: {text[:200]}"

    async def aclose(self) -> None:
        """Stop probing and close the connections."""
        if self._loop_end is not None:
            self._loop_end.cancel()
            self._loop_end = None
        await _cancel(self._probe)
        await self._redis.aclose(close_connection_pool=True)


# --------------------------------------------------------------------------- the quota


class FleetQuota:
    """``rate_limit`` for the whole fleet: start times leased from one GCRA in Redis.

    ``acquire`` takes the earliest leased slot and waits for its time; when none is
    left, one lease (shared by every request waiting here) fetches a batch. Without
    Redis, a ``RateLimit`` of this member's share paces it (the quota divided by the
    members that leased in the last two seconds, as Redis last counted them), so that a
    fleet that loses Redis does not send its quota once per member; it starts after the
    last slot this member was given, which the fleet counted already. A lease is renewed
    ahead of need while requests start as fast as slots come, so Redis stays off their
    path.

    When Redis loses the quota (restarted empty, flushed: ``Link.on_lost``), the lease
    that finds it is asked for again at once, and the quota starts again as far ahead
    as it was at this member's last lease (``_lease_args``), not beside the slots the
    members still hold.
    """

    __slots__ = (
        "_ahead",
        "_fallback",
        "_given",
        "_id",
        "_keys",
        "_lease",
        "_leased",
        "_leased_at",
        "_link",
        "_lost",
        "_members",
        "_offset",
        "_script",
        "_shape",
        "_share",
        "_slots",
        "_taken",
        "_tat",
        "_told",
        "_waiting",
        "per_second",
    )

    def __init__(self, link: Link, key: str, per_second: float, *, name: str = "quota") -> None:
        self._link = link
        self._keys = (f"{key}:{name}", f"{key}:{name}:members")
        self._script = link.script(QUOTA_SCRIPT)
        self._id = uuid.uuid4().hex
        self._members = 1  # as Redis last counted them
        self.per_second = per_second
        self._shape = QuotaShape(per_second, rate_burst(per_second))
        self._share: float | None = None
        self._slots = RateSlots(self._shape.grace)
        self._fallback = RateLimit(per_second)
        self._lease: asyncio.Task[bool] | None = None
        self._leased = 0  # the size of the last lease
        self._leased_at = 0.0  # when it was asked for
        self._taken = 0  # slots taken since
        self._waiting = 0
        self._given = -math.inf  # the latest slot taken here (loop time)
        self._offset: float | None = None  # Redis's clock minus the loop's, as last heard (s)
        self._ahead = 0.0  # how far ahead of Redis's clock its TAT was after the last lease
        self._tat = -math.inf  # when that was (loop time)
        self._lost = False  # Redis lost the quota since the last lease was asked for
        self._told = False  # whether a lease that failed (a bug) was logged
        link.on_lost(self._restarted)

    def __repr__(self) -> str:
        return f"<FleetQuota {self.per_second:g}/s>"

    async def acquire(self) -> None:
        """Wait until a request may start, fleet-wide (or client-wide without Redis)."""
        when = await self.slot()
        if when is None:
            # Alone after the slots leased so far, here and (as last heard) by the others,
            # which they may still send: not beside them.
            delay = max(self._given, self._tat) - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._alone().acquire()
            return
        delay = when - asyncio.get_running_loop().time()
        if delay > 0:
            try:
                await asyncio.sleep(delay)
            except BaseException:
                self.put_back(when)  # uncounted too: the taken slots size the next lease
                raise

    async def slot(self) -> float | None:
        """The time (loop time, perhaps past) of the next start slot leased for this member,
        taken (``put_back`` gives back one that goes unused); None if Redis is unavailable.
        Awaits only when a lease must be fetched first."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            when = self._slots.take(now)
            if when is not None:
                self._taken += 1
                self._given = max(self._given, when)
                if when <= now and 2 * len(self._slots) < self._leased:
                    self._lease_soon()  # slots go as fast as they come: stay ahead
                return when
            if not self._link.available():
                return None
            self._waiting += 1
            try:
                leased = await asyncio.shield(self._lease_soon())
            finally:
                self._waiting -= 1
            if not leased:
                return None

    def put_back(self, when: float) -> None:
        """A slot from ``slot`` that its request did not use (cancelled, or past its
        deadline): the next request takes it."""
        self._taken -= 1
        self._slots.put_back(when)

    def retune(self, per_second: float, share: float | None = None) -> None:
        """From the next lease on, ``per_second`` for the whole fleet (the slots leased
        already keep their times), leased ``share`` per second's worth at a time if given
        (``_sharing.lease_size``)."""
        self._share = share
        if per_second != self.per_second:
            self.per_second = per_second
            self._shape = QuotaShape(per_second, rate_burst(per_second))
            self._slots.grace = self._shape.grace

    def _alone(self) -> RateLimit:
        """The pace without Redis: this member's share of the quota, as last counted."""
        share = self.per_second / self._members
        if self._fallback.per_second != share:
            self._fallback = RateLimit(share)
        return self._fallback

    def _lease_soon(self) -> asyncio.Task[bool]:
        task = self._lease
        if task is None or task.done():
            task = self._lease = asyncio.get_running_loop().create_task(self._lease_kept())
        return task

    async def _lease_kept(self) -> bool:
        """``_lease_once``; should it fail (a bug: Redis's own errors are handled within),
        say so once with the traceback, and let the requests waiting for it go on alone:
        no call fails because of the fleet, and the task, which the requests that waited
        may all have left (cancelled), keeps no exception that nobody retrieves."""
        try:
            return await self._lease_once()
        except Exception:
            if not self._told:
                self._told = True
                logger.error(
                    "fleet: a lease of the %s failed; the requests waiting for it go on"
                    " with this process's own pace",
                    self._keys[0].rsplit(":", 1)[-1],
                    exc_info=True,
                )
            return False

    async def _lease_once(self) -> bool:
        shape = self._shape
        now = asyncio.get_running_loop().time()
        count = lease_size(
            shape, self._waiting, self._taken, now - self._leased_at, share=self._share
        )
        self._taken, self._leased_at = 0, now
        lost, self._lost = self._lost, False  # found by another part, or by the probe
        answer = await self._link.run(self._script, self._keys, self._lease_args(count, lost=lost))
        if answer is None and self._lost:
            # Not leased: Redis lost the quota meanwhile. Again at once, from where its TAT
            # was (the slots the members hold reach that far), not from now.
            args = self._lease_args(count, lost=True)
            answer = await self._link.run(self._script, self._keys, args)
        if answer is None:
            return False
        first, redis_now, self._members = int(answer[0]), int(answer[1]), int(answer[2])
        now = asyncio.get_running_loop().time()
        self._offset = redis_now / 1e6 - now
        self._ahead = (first - redis_now) / 1e6 + count * shape.interval
        self._tat = now + self._ahead
        # Redis's clock is not ours: the first slot is where it is relative to Redis's now,
        # which was a little before this answer came (so the slots err on the late side).
        self._slots.add(now + (first - redis_now) / 1e6, shape.interval, count, now)
        self._leased = count
        return True

    def _lease_args(self, count: int, *, lost: bool = False) -> tuple[object, ...]:
        """The quota script's arguments for a lease of ``count``. Should the TAT be gone,
        it starts again after the last slot held here; ``lost`` (Redis lost the quota):
        also no nearer than it was ahead of Redis's clock at this member's last lease (the
        members hold slots that far ahead, taken in turns, so one member's own last slot
        is no guide: a third of a second ahead for three members at 100/s, its own a few
        hundredths)."""
        last, offset = max(self._given, self._slots.last()), self._offset
        if lost:
            last = max(last, asyncio.get_running_loop().time() + self._ahead)
        after = 0 if offset is None or math.isinf(last) else round((last + offset) * 1e6)
        return (
            round(self._shape.interval * 1e6, 3),
            count,
            self._id,
            round(MEMBER_SECONDS * 1e6),
            max(0, after),
        )

    def _restarted(self) -> None:
        """Redis lost the quota (``Link.on_lost``): a lease under way was not made, and is
        asked for again; it, or else the next, starts the quota again (``_lease_args``)."""
        self._lost = True

    async def aclose(self) -> None:
        await _cancel(self._lease)


# --------------------------------------------------------------------------- in-flight slots


class FleetSlots:
    """At most ``capacity`` requests in flight fleet-wide, shared fairly among members.

    A member (one per client) leases its slots in Redis under its own id, with an expiry
    (``LEASE_TTL``) that a background task renews; a member that dies stops renewing and
    its slots go back to the others within the lease's time. Locally the slots are a
    ``Gate`` whose capacity is what Redis allotted; without Redis the gate is unbounded
    and the client's own flow control alone holds requests back.
    """

    __slots__ = (
        "_capacity",
        "_frozen_until",
        "_gate",
        "_id",
        "_keys",
        "_link",
        "_lost",
        "_member",
        "_script",
        "_task",
        "_wake",
    )

    def __init__(self, link: Link, key: str, capacity: int) -> None:
        self._link = link
        self._keys = (f"{key}:slots:leases", f"{key}:slots:wants", f"{key}:slots:held")
        self._script = link.script(SLOTS_SCRIPT)
        self._capacity = capacity
        self._id = uuid.uuid4().hex
        self._gate = Gate(0)
        self._member = Membership()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._lost = False  # Redis lost the slots since the sync under way was sent
        self._frozen_until = -math.inf  # asks for no more than it has until then

    def __repr__(self) -> str:
        return f"<FleetSlots {self.in_use}/{self.allotted} of {self._capacity}>"

    @property
    def capacity(self) -> int:
        """Slots in the whole fleet."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        self._capacity = value
        self._member.synced_at = None  # tell Redis at once
        self._poke()

    @property
    def allotted(self) -> int:
        """Slots this member may use now."""
        return self._gate.capacity

    @property
    def in_use(self) -> int:
        """Slots this member uses now."""
        return self._gate.in_use

    async def acquire(self) -> None:
        """Wait for a fleet slot (first come, first served within this member)."""
        if self._task is None or self._task.done():  # none yet, or its loop ended
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(_kept_running(self._run, "slots"))
        if not self._gate.try_acquire():
            self._poke()
            await self._gate.acquire()

    def release(self) -> None:
        """Give a slot back."""
        self._gate.release()
        self._poke()

    def restarted(self) -> None:
        """Redis lost the fleet's state (``Link.on_lost``): tell it what is held here now
        (a sync under way asks again at once), and ask for no more until every member
        has (each renews within ``RENEW_EVERY``): until then Redis counts none of the
        slots the others hold, and would allot them here."""
        self._lost = True
        self._frozen_until = asyncio.get_running_loop().time() + RENEW_EVERY
        self._member.synced_at = None
        self._poke()

    def _wants(self, want: int, now: float) -> int:
        """What to ask for, wanting ``want``: no more than it has, while Redis relearns
        what the members hold after it lost it."""
        if now < self._frozen_until:
            allotted = self._member.allotted
            had = 0 if allotted >= _UNBOUNDED else allotted  # unbounded: Redis was down
            return min(want, max(self._gate.in_use, had))
        return want

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        gate, member, wake = self._gate, self._member, self._wake
        assert wake is not None
        while True:
            now = loop.time()
            want = self._wants(gate.in_use + gate.waiting, now)
            due = member.next_sync(now, want, gate.in_use)
            if due > now:
                await _wait(wake, due)
                continue
            if not await self._sync(want, gate.in_use):
                gate.capacity = _UNBOUNDED
                member.answered(now, _UNBOUNDED, _UNBOUNDED, gate.in_use)
                await asyncio.sleep(RENEW_EVERY)

    async def _sync(self, want: int, in_use: int) -> bool:
        args = (self._id, want, in_use, self._capacity, int(LEASE_TTL * 1000))
        self._lost = False
        answer = await self._link.run(self._script, self._keys, args)
        if answer is None and self._lost:  # Redis lost the slots meanwhile: tell it again
            want = self._wants(want, asyncio.get_running_loop().time())
            args = (self._id, want, in_use, self._capacity, int(LEASE_TTL * 1000))
            answer = await self._link.run(self._script, self._keys, args)
        if answer is None:
            return False
        allotted, share = int(answer[0]), int(answer[1])
        self._member.answered(asyncio.get_running_loop().time(), allotted, share, in_use)
        self._gate.capacity = allotted
        return True

    async def aclose(self) -> None:
        """Stop renewing, and give the slots back at once if Redis is there."""
        if self._task is None:
            return
        await _cancel(self._task)
        self._task = None
        if self._member.recorded and self._link.up:
            await self._sync(0, 0)


# --------------------------------------------------------------------------- refusals


class FleetLimit:
    """The fleet's side of a client's ``"auto"`` limit (``Flow.share``): a refusal that
    lowers one member's limit lowers the others', and the share of members that leave
    goes to those that stay.

    The members share one server, so a refusal one of them sees (a 429, a 503, a timeout)
    says that the fleet as a whole sends too much: each member lowers its own limit as if
    one of its own requests had been refused at the level it has in flight (its ceiling,
    as ``AdaptiveLimit`` decides alone). Whether the server counts requests per second
    (a quota: pace) is told by the fleet's levels, the sum of the members' limits heard
    at each exchange (``AdaptiveLimit.fleet_heard``), not by one member's: the others go
    on at their levels until they hear of its refusal. Each member's limit learns on its own
    answers, but what it keeps in flight is an even share of the members' limits
    (``Flow.fleet_share``) once they settled: learnt apart, they end up unequal (one
    refused at a low level stays below it for seconds).

    Against a quota the members that pace keep one pace for the fleet in Redis: a member
    that begins to pace joins it (``_sharing.pace_report`` says with what), each takes an
    even share of it as its own pace, and what its pace learns since (settled lower by a
    refusal, grown along its curve) moves the fleet's at the next exchange. Paced members
    start their requests on one GCRA at the fleet's pace (``slot``, leased in batches of a
    tenth of a second of an even share, as ``FleetQuota`` leases), which serves whichever
    member asks: their shares even out by demand, where paces learnt apart would not
    (one refused before it had answers learns a trickle, one that had the server's
    burst too much), each at most ``_sharing.MOST_SHARE`` even shares. Without Redis
    (down, lost, or not heard since it went idle) a member paces alone at its own pace.

    What is shared is the news (``_sharing.RefusalNews``), who takes part, their limits
    and the fleet's pace, through one counter, one set and two hashes in Redis, exchanged
    by a background task while the client has ``"auto"`` requests in flight or waiting:
    never on a request's path. When members leave (closed, or silent for
    ``_sharing.MEMBER_SECONDS``: idle or killed), each that stays scales what its limit
    learnt by the members before over the members now (``AdaptiveLimit.rescale``): the
    server's capacity they had is theirs. A member that joins takes nothing from the
    others: the first refusal its requests bring lowers every limit. Without Redis each
    member's limit goes on alone.
    """

    __slots__ = (
        "_earliest",
        "_epoch",
        "_fleet_pace",
        "_flow",
        "_id",
        "_joined",
        "_keys",
        "_last_slot",
        "_link",
        "_news",
        "_pace",
        "_paced",
        "_script",
        "_shared",
        "_task",
        "_wake",
        "idle",
    )

    def __init__(self, link: Link, key: str, flow: Flow) -> None:
        self._link = link
        self._keys = tuple(
            f"{key}:refusals{part}" for part in ("", ":members", ":limits", ":paces")
        )
        self._script = link.script(REFUSALS_SCRIPT)
        self._id = uuid.uuid4().hex
        self._flow = flow
        self._news = RefusalNews()
        # The paced members' shared pace (retuned before each slot); the fleet's pace and
        # how many pace, as last heard (None: not paced then, not heard, or lost); and the
        # share of it this member took then (None: none, it joins at its next exchange).
        self._pace = FleetQuota(link, key, 1.0, name="pace")
        self._fleet_pace: float | None = None
        self._paced = 1
        self._shared: float | None = None
        self._earliest = 0.0  # the next start its cap on the shared pace allows (loop time)
        # The last start ``slot`` gave: it, its slot on the shared pace, and the cap before
        # and after it (``put_back``).
        self._last_slot: tuple[float, float, float, float] | None = None
        self._joined = False  # whether it has taken a share of the fleet's pace yet
        self._epoch = flow.adaptive.epoch  # the limit's when the fleet was last heard
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self.idle = True  # no exchange due until ``wake``

    def __repr__(self) -> str:
        return f"<FleetLimit {self._flow.adaptive.limit}>"

    def wake(self) -> None:
        """``"auto"`` requests are under way: hear the fleet now and then."""
        self.idle = False
        if self._task is None or self._task.done():  # none yet, or its loop ended
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                _kept_running(self._run, "refusals")
            )
        else:
            assert self._wake is not None
            self._wake.set()

    def refused(self, sent: float) -> None:
        """A request sent at ``sent`` (loop time) was refused, and that lowered the limit:
        tell the fleet at once."""
        self._news.refused(sent)
        self.wake()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        news, flow, wake = self._news, self._flow, self._wake
        assert wake is not None
        while True:
            now = loop.time()
            due = news.next_sync(now, busy=flow.busy)
            if due > now:
                self.idle = math.isinf(due)
                if self.idle:
                    self._fleet_pace = None  # busy again, it hears the fleet first
                await _wait(wake, due)
                continue
            await self._sync(now)

    async def _sync(self, now: float) -> None:
        """Tell Redis of a refusal here, if any; hear whether another member had one, and
        how many take part."""
        sent = self._news.take()
        sent_ago = -1 if sent is None else max(0, round((now - sent) * 1000))
        adaptive = self._flow.adaptive
        told = adaptive.rate
        # Measured or not, a member that joins again (Redis was lost meanwhile) brings no
        # share of its own: the fleet's pace had it.
        measured = adaptive.rate_measured and not self._joined
        pace = pace_report(told, self._shared, measured, adaptive.refused_rate)
        answer = await self._link.run(self._script, self._keys, self._args(sent_ago, pace))
        flow = self._flow
        now = asyncio.get_running_loop().time()
        # What the pace here learnt during the exchange (before a rescale, below, moves it).
        rate = adaptive.rate
        learnt = None if told is None or rate is None else rate - told
        if answer is None:
            self._alone(now)  # it joins again once Redis is back
        else:
            counted, mine, members, limits, paced = (int(field) for field in answer[:5])
            news, grown = self._news.heard(now, counted, bool(mine), members)
            share = self._news.share(limits)
            # What the fleet sends, before the news below lowers the limit here: a quota is
            # told by the fleet's levels, not by this member's.
            flow.adaptive.fleet_heard(limits, self._news.members, settled=share is not None)
            if news:
                # Unless its own limit was lowered since it last heard: the same overload.
                flow.refused_elsewhere(self._epoch)
            if grown > 1:
                flow.adaptive.rescale(grown)
            flow.fleet_share(share)
            self._share_pace(learnt, float(answer[5]), paced)
        self._epoch = flow.adaptive.epoch

    def _share_pace(self, learnt: float | None, fleet: float, paced: int) -> None:
        """Take an even share of the fleet's pace (``fleet``, shared by ``paced`` members),
        as Redis answered an exchange, plus what the pace here ``learnt`` during it (None:
        not paced, then or now), to be told at the next."""
        adaptive = self._flow.adaptive
        if learnt is None or adaptive.rate is None or fleet <= 0:
            self._fleet_pace = self._shared = None
            return
        share = fleet / max(1, paced)
        adaptive.share_pace(share + learnt)  # ...and its curve with it
        self._fleet_pace, self._paced, self._shared = fleet, max(1, paced), share
        self._joined = True

    def _args(
        self, sent_ago: int, pace: tuple[float, int], *, leave: bool = False
    ) -> tuple[object, ...]:
        """The refusals script's arguments; ``pace``: what to tell of this member's pace,
        and how (``_sharing.pace_report``)."""
        member_ms = 0 if leave else round(MEMBER_SECONDS * 1000)
        hear_ms = round(HEAR_WITHIN * 1000)
        limit = self._flow.adaptive.limit
        told, how = pace
        return (
            self._id,
            sent_ago,
            hear_ms,
            member_ms,
            _REFUSALS_KEEP_SECONDS,
            limit,
            f"{told:.6f}",
            int(how),
            MIN_RATE,
        )

    @property
    def pacing(self) -> bool:
        """Whether this member's paced requests start on the fleet's shared pace (``slot``):
        Redis is up and the members' paces were heard since it last went idle."""
        return self._fleet_pace is not None and self._link.up

    async def slot(self) -> float | None:
        """A start time (loop time, perhaps past) for a paced request, from the fleet's
        shared pace: one GCRA in Redis at the fleet's pace (kept by the refusals script,
        moved by what each member's pace learns), which serves whichever member asks, so
        that their shares even out by demand; leased in batches, as ``FleetQuota`` does.
        None: each member paces alone (not paced, the paces not heard, Redis
        unavailable)."""
        fleet, shared, rate = self._fleet_pace, self._shared, self._flow.adaptive.rate
        if fleet is None or shared is None or rate is None:
            return None
        pace = max(MIN_RATE, fleet + rate - shared)  # what it learnt since, counted in
        share = pace / self._paced
        self._pace.retune(pace, share)
        when = await self._pace.slot()
        if when is None:
            return None
        before = self._earliest
        start, self._earliest = capped_start(when, before, share)
        self._last_slot = (start, when, before, self._earliest)
        return start

    def put_back(self, when: float) -> None:
        """A start time from ``slot`` that its request did not use: the shared pace's slot
        goes back, and the cap it moved moves back, if no later slot moved it since (else
        the next request here would wait a whole capped interval for nothing)."""
        last = self._last_slot
        if last is None or last[0] != when:
            self._pace.put_back(when)
            return
        self._last_slot = None
        _, slot, before, after = last
        if self._earliest == after:
            self._earliest = before
        self._pace.put_back(slot)

    def restarted(self) -> None:
        """Redis lost the fleet's state (``Link.on_lost``): what was heard of it is gone,
        not changed (a count back to zero is no news, members not heard again did not
        leave), and this member joins the fleet's pace again with its own, as each does."""
        self._alone(None)
        self._joined = False

    def _alone(self, now: float | None) -> None:
        """Without the fleet until it is heard again: what was heard is forgotten, and the
        limit, the pace and the evidence of a quota here are this member's own. ``now``:
        when an exchange found Redis unavailable (the next comes an interval later); None:
        exchange again at once (``RefusalNews.lost``)."""
        self._news.lost(now)
        self._fleet_pace = self._shared = None
        self._flow.fleet_share(None)
        self._flow.adaptive.fleet_left()

    async def aclose(self) -> None:
        """Stop exchanging, and leave the members at once: the others take over its share
        (idle, it would count for ``MEMBER_SECONDS`` more)."""
        await self._pace.aclose()
        if self._task is None:
            return
        await _cancel(self._task)
        self._task = None
        self._news.lost(None)
        await self._leave()

    async def _leave(self) -> None:
        """Leave the members at once, if Redis is up: the others take over its share."""
        if self._link.up:
            await self._link.run(self._script, self._keys, self._args(-1, (0.0, 0), leave=True))


# --------------------------------------------------------------------------- the fleet


class Fleet:
    """One client's link to its fleet: the quota, the slots, the retry budget, the
    refusals."""

    __slots__ = (
        "_budget",
        "_budget_script",
        "_budget_spent_enough",
        "_budget_task",
        "_key",
        "_link",
        "_parts",
    )

    def __init__(self, link: Link, key: str) -> None:
        self._link = link
        self._key = key
        self._budget_script = link.script(BUDGET_SCRIPT)
        self._budget: RetryBudget | None = None
        self._budget_task: asyncio.Task[None] | None = None
        self._budget_spent_enough: asyncio.Event | None = None
        self._parts: list[FleetQuota | FleetSlots | FleetLimit] = []

    def __repr__(self) -> str:
        return f"<Fleet {self._link.where}>"

    @property
    def url(self) -> str:
        """The Redis URL, without its password."""
        return self._link.where

    @property
    def key(self) -> str:
        """The prefix of this fleet's keys in Redis."""
        return self._key

    def quota(self, per_second: float) -> FleetQuota:
        """``rate_limit=per_second`` for the whole fleet."""
        quota = FleetQuota(self._link, self._key, per_second)
        self._parts.append(quota)
        return quota

    def slots(self, capacity: int) -> FleetSlots:
        """A fleet-wide semaphore of ``capacity`` slots, this client one of its members."""
        slots = FleetSlots(self._link, self._key, capacity)
        self._link.on_lost(slots.restarted)
        self._parts.append(slots)
        return slots

    def limit(self, flow: Flow) -> FleetLimit:
        """The fleet's side of ``flow``'s adaptive limit: refusals heard fleet-wide."""
        limit = FleetLimit(self._link, self._key, flow)
        self._link.on_lost(limit.restarted)
        self._parts.append(limit)
        return limit

    def share_budget(self, budget: RetryBudget) -> None:
        """Make ``budget`` the fleet's: what it spends and refunds reaches Redis."""
        self._budget = budget
        budget.on_spend = self._budget_spent

    def _budget_spent(self) -> None:
        task = self._budget_task
        if task is None or task.done():
            self._budget_spent_enough = asyncio.Event()
            self._budget_task = asyncio.get_running_loop().create_task(self._sync_budget())
        elif self._budget is not None and self._budget.unsynced <= -_BUDGET_SYNC_SPENT:
            assert self._budget_spent_enough is not None
            self._budget_spent_enough.set()

    async def _sync_budget(self) -> None:
        """Send what was spent and refunded here, take the fleet's count; again every
        quarter of a second (or after five retries here) until in step and full."""
        budget, spent_enough = self._budget, self._budget_spent_enough
        assert budget is not None
        assert spent_enough is not None
        script, keys = self._budget_script, (f"{self._key}:retry_budget",)
        while True:
            change = budget.unsynced
            budget.unsynced = 0
            spent_enough.clear()
            before = budget.tokens - change  # this member's count of the fleet's, as heard
            tokens = await self._link.run(
                script, keys, (change, budget.capacity, _BUDGET_KEEP_SECONDS, before)
            )
            if tokens is None:
                return  # alone until the next retry: what was spent meanwhile stays local
            budget.adopt(int(tokens))
            if budget.unsynced == 0 and budget.tokens >= budget.capacity:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_BUDGET_SYNC_EVERY):
                    await spent_enough.wait()

    def abandon(self) -> None:
        """The client was garbage-collected unclosed: close the connections, not awaiting."""
        self._link.abandon()

    async def aclose(self) -> None:
        """Stop every background task, give the slots back, close the connections."""
        await _cancel(self._budget_task)
        for part in self._parts:
            await part.aclose()
        await self._link.aclose()


async def _kept_running(loop_body: Callable[[], Awaitable[None]], what: str) -> None:
    """Run a member's exchange loop; should it fail (a bug: Redis's own errors are handled
    within), say so once with the traceback and start it again a lease's renewal later,
    rather than let the exchange stop unseen for the rest of the run."""
    told = False
    while True:
        try:
            await loop_body()
        except Exception:
            if not told:
                logger.error(
                    "fleet: the %s exchange with Redis failed; it starts again in %g s,"
                    " and meanwhile this process's flow control goes on alone",
                    what,
                    RENEW_EVERY,
                    exc_info=True,
                )
                told = True
        else:
            return
        await asyncio.sleep(RENEW_EVERY)


async def _wait(wake: asyncio.Event, due: float) -> None:
    """Until ``due`` (loop time; infinite: no end) or until ``wake`` is set."""
    wake.clear()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(None if math.isinf(due) else due):
            await wake.wait()


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it to end (a cancel of our own caller propagates).

    Cancelled again until it ends: a library under it may swallow one cancellation.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait((task,), timeout=COMMAND_TIMEOUT)
