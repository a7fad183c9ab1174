"""The fleet's edges through a real ``redis-server``: Redis that loses its data mid-run
(FLUSHALL, or a fresh server on the same port), a paced slot given back, an ``acquire``
cancelled at each of its awaits, and a Redis that never answers or forgot its scripts.

As in ``test_fleet``, timing is only ever checked from below or as a bound against a hang.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

import pytest

from segments_async import RetryPolicy
from segments_async._fleet import COMMAND_TIMEOUT, Fleet, FleetLimit, open_fleet
from segments_async._flow import Flow, rate_burst

from ..rawserver import RawRequest, RawServer
from ..redisserver import RedisServer
from .support import TOKEN, make_client
from .test_fleet import UNAVAILABLE, Arrivals, black_hole, calls, fleet_warnings

# --------------------------------------------------------------------------- Redis loses its data


def flushed(server: RedisServer) -> None:
    assert "+OK" == server.command("FLUSHALL")


async def members_of(redis_url: str, count: int) -> tuple[Fleet, list[Flow], list[FleetLimit]]:
    fleet = open_fleet(redis_url, "https://api.example", TOKEN)
    assert fleet is not None
    flows = [Flow(rate=None, max_connections=100) for _ in range(count)]
    return fleet, flows, [fleet.limit(flow) for flow in flows]


async def exchanges(*members: FleetLimit) -> None:
    loop = asyncio.get_running_loop()
    for member in members:
        await member._sync(loop.time())


async def test_members_that_hear_an_emptied_redis_take_no_one_elses_share(redis_server, redis_url):
    """Three members heard of each other; Redis loses its data: the first to be heard
    again finds itself alone, but nobody left, and its limit must not grow threefold (nor
    the second's twofold): the fleet would send up to twice what it learnt."""
    fleet, flows, members = await members_of(redis_url, 3)
    try:
        await exchanges(*members, *members, *members)
        before = [flow.adaptive.limit for flow in flows]
        flushed(redis_server)
        await exchanges(*members, *members, *members)
        assert before == [flow.adaptive.limit for flow in flows]
    finally:
        await fleet.aclose()


async def test_after_redis_lost_its_count_a_refusal_is_news_again_and_the_loss_is_not(
    redis_server, redis_url
):
    """The fleet's count of refusals was 57; Redis loses it. Hearing 0 (or the 1 of a
    refusal told first) is not news of a refusal; a refusal told after that is."""
    fleet, flows, members = await members_of(redis_url, 3)
    try:
        await exchanges(*members)
        with RedisClient(redis_url) as r:
            for key in r.scan_iter("*:refusals"):
                r.hset(key, "count", 57)
        await exchanges(*members, *members)
        epochs = [flow.adaptive.epoch for flow in flows]
        assert [0, 0, 0] == epochs
        flushed(redis_server)
        await exchanges(*members, *members)
        assert epochs == [flow.adaptive.epoch for flow in flows]
        # The first news after the loss: a refusal at member 0, heard by the others.
        adaptive = flows[0].adaptive
        adaptive.record(adaptive.ticket(4), rtt=None, refused=True, now=1.0)
        members[0].refused(0.0)
        await exchanges(*members)
        assert [1, 1, 1] == [flow.adaptive.epoch for flow in flows]
    finally:
        await fleet.aclose()


def pace_from(adaptive: Any, refused: float) -> None:
    adaptive._rate, adaptive._rate_refused = 0.7 * refused, refused


@pytest.mark.parametrize("measured", [True, False])
async def test_the_fleets_pace_starts_again_from_the_members_paces(
    redis_server, redis_url, measured
):
    """Two members share the fleet's pace; Redis loses it. Each goes on at its own share
    (the fleet's pace must not start again from nothing: a change told to an empty Redis
    left a trickle of 0.5/s for the whole fleet), and together they rebuild it: measured
    paces are added up again, exactly; estimates (the larger stands) at least to half."""
    fleet, flows, members = await members_of(redis_url, 2)
    first, second = (flow.adaptive for flow in flows)
    try:
        pace_from(first, 60.0)
        pace_from(second, 2.0)
        first._rate_measured = second._rate_measured = measured
        await exchanges(members[0])
        await exchanges(*members, *members)
        paces = [first.rate, second.rate]
        fleet_pace = members[0]._fleet_pace
        assert fleet_pace is not None
        assert paces[0] == pytest.approx(paces[1])
        flushed(redis_server)
        await exchanges(*members, *members, *members)
        after = [first.rate, second.rate]
        if measured:
            assert paces == pytest.approx(after)
            assert fleet_pace == pytest.approx(members[0]._fleet_pace)
        else:
            assert all(rate is not None and 2 * rate >= paces[0] for rate in after), after
    finally:
        await fleet.aclose()


class RedisClient:
    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url)

    def __enter__(self) -> Any:
        return self._client

    def __exit__(self, *exc: object) -> None:
        self._client.close()


async def quota_through_a_loss(url: str, lose: Any, *, rate: float = 100.0) -> Arrivals:
    """Three clients with ``rate_limit=rate`` and one fleet call as fast as it lets them,
    300 calls in all; ``lose`` (a blocking function) empties Redis a second in."""
    arrivals = Arrivals()
    async with RawServer(arrivals) as server:
        clients = [make_client(server.url, rate_limit=rate, fleet=url) for _ in range(3)]
        try:
            async with asyncio.timeout(60):
                running = asyncio.gather(*(calls(c, 100) for c in clients))
                await asyncio.sleep(1.0)
                await asyncio.to_thread(lose)
                await running  # no call failed
        finally:
            for c in clients:
                await c.aclose()
    assert 300 == len(arrivals.times)
    return arrivals


async def test_a_fleet_whose_redis_is_flushed_keeps_to_its_quota(own_redis):
    """The members hold slots up to where the lost TAT was (a third of a second ahead
    here): a TAT started again from now would be sent beside them (121 to 129 in a
    second, for a quota of 100 and a burst of 10)."""
    rate = 100.0
    arrivals = await quota_through_a_loss(own_redis.url, lambda: flushed(own_redis), rate=rate)
    assert arrivals.most_in_a_second() <= rate + rate_burst(rate) + 2


async def test_a_fleet_whose_redis_restarts_empty_keeps_to_its_quota(own_redis):
    """Stopped, then started again empty on the same port: the members go alone (each
    with the burst of its share, as when Redis is lost) after the slots leased so far,
    then share a quota started again where it was, not from now (135 to 139 in a
    second)."""

    def restart() -> None:
        own_redis.stop()
        own_redis.start()

    rate, members = 100.0, 3
    arrivals = await quota_through_a_loss(own_redis.url, restart, rate=rate)
    most = rate + 2 * members * rate_burst(rate / members) + 2
    assert arrivals.most_in_a_second() <= most


async def test_a_retry_budget_half_spent_stays_half_spent_when_redis_loses_it(
    redis_server, redis_url
):
    """Two clients spend half the fleet's retry budget (50 retries of 100); Redis loses it:
    the budget goes on from what the members had, not from full (that would pay for 100
    retries more, 150 in the outage)."""
    policy = RetryPolicy(max_retries=5, backoff_initial=0.0005, backoff_max=0.001)

    async def unavailable(request: RawRequest) -> bytes:
        return UNAVAILABLE

    async with RawServer(unavailable) as server, asyncio.timeout(60):
        clients = [make_client(server.url, retry=policy, fleet=redis_url) for _ in range(2)]

        async def fail(client: Any, count: int) -> None:
            for _ in range(count):
                with pytest.raises(Exception, match=r"503|try later"):
                    await client.segments.list()

        try:
            await asyncio.gather(*(fail(c, 5) for c in clients))  # 2 x 5 calls, 6 tries each
            assert 60 == len(server.requests)
            await asyncio.sleep(0.3)  # the budget heard by both
            flushed(redis_server)
            await asyncio.gather(*(fail(c, 20) for c in clients for _ in range(2)))
        finally:
            for c in clients:
                await c.aclose()
        retries = len(server.requests) - 10 - 80
    assert retries <= 130, retries


async def test_slots_are_never_overbooked_when_redis_loses_who_holds_them(redis_server, redis_url):
    """Three members share 6 in-flight slots, all in use; Redis loses who holds them: the
    first heard again must not be allotted all 6 while the others still use theirs."""
    capacity, count = 6, 3
    fleets = [open_fleet(redis_url, "http://127.0.0.1:1", TOKEN) for _ in range(count)]
    members = [fleet.slots(capacity) for fleet in fleets if fleet is not None]
    loop = asyncio.get_running_loop()
    peak = 0
    until = loop.time() + 1.5

    async def worker(slots: Any) -> None:
        nonlocal peak
        while loop.time() < until:
            await slots.acquire()
            try:
                peak = max(peak, sum(s.in_use for s in members))
                await asyncio.sleep(0.005)
            finally:
                slots.release()

    async def lose() -> None:
        await asyncio.sleep(0.6)  # shares settled
        flushed(redis_server)

    try:
        async with asyncio.timeout(30):
            await asyncio.gather(lose(), *(worker(s) for s in members for _ in range(capacity)))
    finally:
        for fleet in fleets:
            if fleet is not None:
                await fleet.aclose()
    assert peak <= capacity


# ------------------------------------------------------------------------ a paced slot given back


async def paced_member(redis_url: str, pace: float, paced: int) -> tuple[Fleet, FleetLimit]:
    """A member paced at ``pace`` on the fleet's shared pace, as heard: ``pace`` for the
    fleet, of ``paced`` members (its even share ``pace / paced``)."""
    fleet, flows, (member,) = await members_of(redis_url, 1)
    adaptive = flows[0].adaptive
    for level in (4, 2, 1, 1):  # refused even one at a time: paced
        adaptive.record(adaptive.ticket(level), rtt=None, refused=True, now=-10.0)
    adaptive._rate = adaptive._rate_refused = pace
    member._fleet_pace, member._paced, member._shared = pace, paced, pace
    return fleet, member


async def test_a_paced_slot_given_back_does_not_hold_the_next_back(redis_url):
    """Of a fleet's pace of 10/s shared by two, a member may start one request each
    1 / (1.5 x 5) s (its cap): a slot given back (its request cancelled, or past its
    deadline) must give back that cap too, or the next request waits a whole capped
    interval more than if the first had never asked."""
    fleet, member = await paced_member(redis_url, 10.0, 2)
    try:
        first = await member.slot()
        second = await member.slot()
        assert first is not None
        assert second is not None
        assert second - first == pytest.approx(1 / 7.5)  # capped: the pace's is 1/10
        member.put_back(second)
        again = await member.slot()
        assert again == pytest.approx(second)
    finally:
        await fleet.aclose()


async def test_a_paced_slot_given_back_late_leaves_a_later_cap_alone(redis_url):
    """Only the cap that slot set is rolled back: given back after a later slot was
    taken, the later one's cap stands."""
    fleet, member = await paced_member(redis_url, 10.0, 2)
    try:
        first = await member.slot()
        second = await member.slot()
        third = await member.slot()
        assert first is not None
        assert second is not None
        assert third is not None
        member.put_back(second)
        fourth = await member.slot()
        assert fourth is not None
        assert fourth >= third + 1 / 7.5 - 1e-6
    finally:
        await fleet.aclose()


# ------------------------------------------------------------------------------ acquire cancelled


class Gated:
    """A link whose commands wait for ``open`` before they are sent."""

    def __init__(self, link: Any) -> None:
        self.link = link
        self.open = asyncio.Event()
        self.calls = 0

    def available(self) -> bool:
        return bool(self.link.available())

    async def run(self, script: Any, keys: Any, args: Any) -> Any:
        self.calls += 1
        await self.open.wait()
        return await self.link.run(script, keys, args)


def gated_quota(redis_url: str, rate: float) -> tuple[Fleet, Any, Gated]:
    fleet = open_fleet(redis_url, "https://api.example", TOKEN)
    assert fleet is not None
    quota = fleet.quota(rate)
    gated = quota._link = Gated(quota._link)
    return fleet, quota, gated


async def until(condition: Any) -> None:
    async with asyncio.timeout(10):  # a bound against a hang
        while not condition():  # noqa: ASYNC110 - state that no event tells of
            await asyncio.sleep(0)


async def test_an_acquire_cancelled_during_its_lease_loses_no_slot(redis_url):
    """Cancelled while the lease it waits for is on its way: the lease goes on (others may
    wait for it too), its slots are kept, and the next acquire takes one without asking
    Redis again; nothing counts the cancelled acquire as waiting."""
    fleet, quota, gated = gated_quota(redis_url, 100.0)
    try:
        acquiring = asyncio.create_task(quota.acquire())
        await until(lambda: gated.calls == 1)
        acquiring.cancel()
        with pytest.raises(asyncio.CancelledError):
            await acquiring
        assert 0 == quota._waiting
        lease = quota._lease
        assert lease is not None
        assert not lease.done()
        gated.open.set()
        assert await lease
        held = len(quota._slots)
        assert held >= 1
        await quota.acquire()
        assert 1 == gated.calls
        assert held - 1 == len(quota._slots)
    finally:
        await fleet.aclose()


async def test_an_acquire_cancelled_asleep_gives_its_slot_back_whole(redis_url):
    """Cancelled while it sleeps until its slot (half a second ahead at 2/s): the slot
    goes back, and so does its count among the slots taken (which sizes the next lease);
    the next acquire takes that very slot."""
    fleet, quota, gated = gated_quota(redis_url, 2.0)
    gated.open.set()
    loop = asyncio.get_running_loop()
    try:
        await quota.acquire()  # the first slot: now
        sleeping = asyncio.create_task(quota.acquire())
        await until(lambda: quota._given > loop.time())
        assert not quota._slots  # it took the one slot leased
        taken = quota._taken
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        assert taken - 1 == quota._taken
        assert 1 == len(quota._slots)
        calls = gated.calls
        when = await quota.slot()
        assert when is not None
        assert when > loop.time()
        assert calls == gated.calls
    finally:
        await fleet.aclose()


async def test_closing_with_a_lease_in_flight_for_a_cancelled_acquire_leaves_nothing(
    redis_url, caplog
):
    """Closed while the lease of a cancelled acquire is still on its way: the lease task
    ends, and nothing is left pending nor an exception unretrieved."""
    caplog.set_level(logging.ERROR, "asyncio")
    fleet, quota, gated = gated_quota(redis_url, 100.0)
    acquiring = asyncio.create_task(quota.acquire())
    await until(lambda: gated.calls == 1)
    acquiring.cancel()
    with pytest.raises(asyncio.CancelledError):
        await acquiring
    lease = quota._lease
    await fleet.aclose()
    assert lease is not None
    assert lease.done()
    del lease, acquiring, quota, fleet
    gc.collect()
    await asyncio.sleep(0)
    assert [] == [r.getMessage() for r in caplog.records if r.name == "asyncio"]


async def test_a_lease_that_fails_with_a_bug_fails_no_acquire_and_is_retrieved(redis_url, caplog):
    """A lease that raises (a bug: Redis's own errors are handled within), awaited by an
    acquire that was cancelled meanwhile and by one that was not: the second goes on
    alone (no call fails because of the fleet), the error is said once with its
    traceback, and asyncio finds no exception that nobody retrieved."""
    caplog.set_level(logging.ERROR)
    fleet, quota, gated = gated_quota(redis_url, 100.0)

    async def broken(script: Any, keys: Any, args: Any) -> Any:
        gated.calls += 1
        await gated.open.wait()
        raise RuntimeError("a bug in the lease")

    gated.run = broken  # type: ignore[method-assign]
    try:
        cancelled = asyncio.create_task(quota.acquire())
        waiting = asyncio.create_task(quota.acquire())
        await until(lambda: gated.calls == 1 and quota._waiting == 2)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        gated.open.set()
        async with asyncio.timeout(10):
            await waiting  # alone
        # Again, its only acquire cancelled before it fails: nobody awaits it then.
        gated.open.clear()
        lone = asyncio.create_task(quota.acquire())
        await until(lambda: gated.calls == 2)
        lone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lone
        lease = quota._lease
        assert lease is not None
        gated.open.set()
        await asyncio.wait((lease,))
    finally:
        await fleet.aclose()
    assert lease is not None
    assert lease.done()
    assert not lease.cancelled()
    assert lease.exception() is None  # nothing left for nobody to retrieve
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert 1 == len(errors), [r.getMessage() for r in errors]
    assert "lease" in errors[0].getMessage()
    assert errors[0].exc_info is not None


# ------------------------------------------------------------------------------ Link, hostile

#: A bound against a hang for one Redis command (its timeout is COMMAND_TIMEOUT): a busy
#: machine may add to it, never a multiple of it.
ONE_COMMAND = COMMAND_TIMEOUT + 1.0


async def test_every_command_to_a_redis_that_never_answers_ends_within_its_timeout(caplog):
    """A Redis that accepts connections and never answers: each part's command, the probe
    and closing (with every part busy) each end within a command's timeout, say so with
    one WARNING, and return None (the caller goes on alone)."""
    caplog.set_level(logging.WARNING, "segments_async")
    hole = black_hole()
    url = await anext(hole)
    loop = asyncio.get_running_loop()
    try:
        fleet = open_fleet(url, "https://api.example", TOKEN)
        assert fleet is not None
        link = fleet._link
        quota = fleet.quota(100.0)
        flow = Flow(rate=None, max_connections=100)
        limit = fleet.limit(flow)
        slots = fleet.slots(4)
        commands = {
            "quota lease": quota._lease_once(),
            "refusals exchange": limit._sync(loop.time()),
            "slots sync": slots._sync(1, 0),
        }
        took: dict[str, float] = {}
        for name, command in commands.items():
            link._circuit.up = True  # each as the first to find it out
            started = loop.time()
            async with asyncio.timeout(10):
                await command
            took[name] = loop.time() - started
        link._circuit.retry_at = 0.0
        assert not link.available()  # down: a probe starts
        probe = link._probe
        assert probe is not None
        started = loop.time()
        async with asyncio.timeout(10):
            await probe
        took["probe"] = loop.time() - started
        # Closing with every part busy: a lease on its way, slots and refusals exchanging.
        link._circuit.up = True
        acquiring = asyncio.create_task(quota.acquire())
        await slots.acquire()
        limit.wake()
        await asyncio.sleep(0.05)
        started = loop.time()
        async with asyncio.timeout(10):
            await fleet.aclose()
        took["close"] = loop.time() - started
        await asyncio.wait((acquiring,), timeout=10)
        assert acquiring.done()
    finally:
        await hole.aclose()
    assert all(seconds <= ONE_COMMAND for seconds in took.values()), took
    sent = [seconds for name, seconds in took.items() if name != "close"]
    assert all(seconds >= 0.9 * COMMAND_TIMEOUT for seconds in sent), took  # they waited
    warnings = fleet_warnings(caplog)
    assert warnings
    assert all("unavailable" in m and "TimeoutError" in m for m in warnings), warnings


async def test_a_redis_frozen_mid_run_fails_no_call_and_delays_none_past_a_timeout(
    own_redis, caplog
):
    """Redis stops answering mid-run (SIGSTOP: its connections stay open, nothing comes
    back), then answers again: no call fails, none waits past a command's timeout for
    it, closing while it is frozen does not hang, and it is said once each way."""
    caplog.set_level(logging.WARNING, "segments_async")
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()
    slowest = 0.0

    async def timed_calls(client: Any, count: int) -> None:
        nonlocal slowest
        for _ in range(count):
            started = loop.time()
            await client.segments.list(per_page=1)
            slowest = max(slowest, loop.time() - started)

    process = own_redis._process
    assert process is not None
    async with RawServer(arrivals) as server, asyncio.timeout(60):
        client = make_client(server.url, rate_limit=200, fleet=own_redis.url)
        try:
            await asyncio.gather(*(timed_calls(client, 20) for _ in range(4)))
            process.send_signal(signal.SIGSTOP)
            try:
                await asyncio.gather(*(timed_calls(client, 50) for _ in range(4)))
            finally:
                process.send_signal(signal.SIGCONT)
            while len(fleet_warnings(caplog)) < 2:  # the probe: every 4 s at most
                await asyncio.gather(*(timed_calls(client, 5) for _ in range(4)))
            process.send_signal(signal.SIGSTOP)
            await asyncio.gather(*(timed_calls(client, 5) for _ in range(4)))
            started = loop.time()
        finally:
            await client.aclose()
            process.send_signal(signal.SIGCONT)
        closed = loop.time() - started
    assert slowest <= ONE_COMMAND + 0.5, slowest  # a rate_limit slot's wait included
    assert closed <= 2 * ONE_COMMAND, closed
    messages = fleet_warnings(caplog)
    assert 3 == len(messages), messages
    assert "unavailable" in messages[0]
    assert "is back" in messages[1]


async def test_scripts_flushed_from_redis_are_loaded_again(redis_server, redis_url, caplog):
    """SCRIPT FLUSH (or a Redis that forgot its scripts): EVALSHA answers NOSCRIPT, and the
    script is loaded again; Redis is not taken for unavailable."""
    caplog.set_level(logging.WARNING, "segments_async")
    fleet = open_fleet(redis_url, "https://api.example", TOKEN)
    assert fleet is not None
    quota = fleet.quota(100.0)
    flow = Flow(rate=None, max_connections=100)
    limit = fleet.limit(flow)
    loop = asyncio.get_running_loop()
    try:
        assert await quota._lease_once()
        await limit._sync(loop.time())
        assert "+OK" == redis_server.command("SCRIPT", "FLUSH")
        assert await quota._lease_once()
        await limit._sync(loop.time())
        assert limit._news.counted is not None  # heard
        assert fleet._link.up
    finally:
        await fleet.aclose()
    assert [] == fleet_warnings(caplog)


async def test_a_redis_that_answers_pings_but_refuses_the_scripts_is_said_once(own_redis, caplog):
    """A Redis that answers PING but refuses every script (a read-only replica: the
    fleet's URL names the wrong one; or an ACL without EVALSHA): down, and said once;
    not "back" at every probe and "unavailable" again at the next command."""
    caplog.set_level(logging.WARNING, "segments_async")
    assert "+OK" == own_redis.command("REPLICAOF", "127.0.0.1", "1")
    arrivals = Arrivals()
    async with (
        RawServer(arrivals) as server,
        asyncio.timeout(60),
        make_client(server.url, rate_limit=100, fleet=own_redis.url) as client,
    ):
        await asyncio.gather(*(calls(client, 100) for _ in range(4)))  # 4 s
    assert 400 == len(arrivals.times)
    messages = fleet_warnings(caplog)
    assert 1 == len(messages), messages
    assert "unavailable" in messages[0]
