"""A fleet through a real ``redis-server``: one quota, one retry budget, fair in-flight
slots and the ``"auto"`` limits' shared refusals and shares for several clients and
processes; Redis down, lost, slow or back; and neither the token nor the Redis password
anywhere they should not be.

Timing is only ever checked from below (a quota cannot be beaten, however slow the
machine) or as a bound against a hang, never as "fast enough".
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from segments_async import RateLimitError, RetryPolicy, SegmentsClient
from segments_async._fleet import Fleet, FleetLimit, FleetSlots, open_fleet
from segments_async._flow import Flow, rate_burst
from segments_async._retry import Failure, Outcome
from segments_async.testing import FakeSegmentsServer

from ..leaks import client_tasks, settle, unclosed_warnings
from ..rawserver import RawRequest, RawServer, json_response
from ..redisserver import RedisServer, redis_binary_or_skip
from .support import TOKEN, closed_port, envelope, make_client
from .test_frames import captured, exceptions_reachable

PAGE = json_response(
    200,
    envelope(
        {"currentPage": 1, "perPage": 1, "lastPage": 1, "total": 0, "items": [], "filters": []}
    ),
)
UNAVAILABLE = json_response(503, {"success": False, "message": "try later"})


class Arrivals:
    """A handler that answers every request with an empty page and notes when it came."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def __call__(self, request: RawRequest) -> bytes:
        self.times.append(asyncio.get_running_loop().time())
        return PAGE

    def most_in_a_second(self) -> int:
        times = sorted(self.times)
        return max(
            (bisect.bisect_right(times, start + 1.0) - i for i, start in enumerate(times)),
            default=0,
        )


@pytest.fixture
async def api() -> AsyncIterator[tuple[RawServer, Arrivals]]:
    arrivals = Arrivals()
    async with RawServer(arrivals) as server:
        yield server, arrivals


async def calls(client: SegmentsClient, count: int, *, at_once: int = 4) -> None:
    """``count`` list calls, ``at_once`` of them in flight."""
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            await client.segments.list(per_page=1)

    await asyncio.gather(*(worker() for _ in range(at_once)))


def redis_contents(url: str) -> list[str]:
    """Every key of ``url``'s Redis and everything stored under it, as text."""
    found: list[str] = []
    with redis.Redis.from_url(url) as r:
        for key in r.scan_iter():
            found.append(key.decode())
            kind = r.type(key).decode()
            if kind == "string":
                found.append(r.get(key).decode())
            elif kind == "hash":
                found += [f"{k.decode()}={v.decode()}" for k, v in r.hgetall(key).items()]
            elif kind == "zset":
                found += [f"{m.decode()}:{s}" for m, s in r.zrange(key, 0, -1, withscores=True)]
            else:
                found.append(f"<{kind}>")
    return found


# --------------------------------------------------------------------------- one quota


async def test_several_clients_share_one_quota(api, redis_url):
    server, arrivals = api
    rate, count = 100.0, 200
    clients = [make_client(server.url, rate_limit=rate, fleet=redis_url) for _ in range(4)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(60):
        await asyncio.gather(*(calls(c, count // 4) for c in clients))
    elapsed = loop.time() - started
    for c in clients:
        await c.aclose()
    burst = rate_burst(rate)
    assert count == len(arrivals.times)
    # Four clients, each allowed 100/s: together never faster than one quota allows.
    assert elapsed >= (count - burst - 2) / rate
    assert arrivals.most_in_a_second() <= rate + burst + 2


async def test_each_client_alone_would_send_its_own_quota(api):
    """The case above without a fleet: what makes it able to fail."""
    server, arrivals = api
    clients = [make_client(server.url, rate_limit=100.0) for _ in range(4)]
    async with asyncio.timeout(60):
        await asyncio.gather(*(calls(c, 50) for c in clients))
    for c in clients:
        await c.aclose()
    assert arrivals.most_in_a_second() > 100 + rate_burst(100.0) + 2


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from segments_async import SegmentsClient

    async def main(url, fleet, rate, count):
        async with SegmentsClient(url, sys.stdin.readline().strip(), rate_limit=rate,
                                  fleet=fleet) as client:
            async def worker(n):
                for _ in range(n):
                    await client.segments.list(per_page=1)
            await asyncio.gather(*(worker(count // 4) for _ in range(4)))

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
    """
)


async def test_several_processes_share_one_quota(api, redis_url):
    server, arrivals = api
    rate, each, processes = 60.0, 40, 3
    loop = asyncio.get_running_loop()
    started = loop.time()
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            server.url,
            redis_url,
            str(rate),
            str(each),
            stdin=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    async with asyncio.timeout(60):
        for worker in workers:
            await worker.communicate(TOKEN.encode() + b"\n")
    elapsed = loop.time() - started
    assert [0] * processes == [worker.returncode for worker in workers]
    assert each * processes == len(arrivals.times)
    burst = rate_burst(rate)
    assert elapsed >= (each * processes - burst - 2) / rate
    assert arrivals.most_in_a_second() <= rate + burst + 2


# --------------------------------------------------------------------------- in-flight slots


def member(redis_url: str, capacity: int) -> tuple[Fleet, FleetSlots]:
    fleet = open_fleet(redis_url, "http://127.0.0.1:1", TOKEN)
    assert fleet is not None
    return fleet, fleet.slots(capacity)


async def test_slots_are_shared_fairly_and_never_overbooked(redis_url):
    capacity, members = 6, 3
    fleets = [member(redis_url, capacity) for _ in range(members)]
    done = [0] * members
    peak = 0
    loop = asyncio.get_running_loop()
    # The first member alone holds every slot until the others' arrival reaches it (a
    # renewal): shares are counted after that.
    settled = loop.time() + 0.5
    until = settled + 1.5

    async def worker(index: int) -> None:
        nonlocal peak
        slots = fleets[index][1]
        while loop.time() < until:
            await slots.acquire()
            try:
                peak = max(peak, sum(s.in_use for _, s in fleets))
                await asyncio.sleep(0.005)
                done[index] += loop.time() > settled
            finally:
                slots.release()

    async with asyncio.timeout(30):
        await asyncio.gather(*(worker(i) for i in range(members) for _ in range(capacity)))
        for fleet, _ in fleets:
            await fleet.aclose()  # once hung: redis-py had swallowed the renewal's cancel
    assert peak <= capacity
    assert min(done) > 0
    assert max(done) <= 1.5 * min(done), done


HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from segments_async._fleet import open_fleet

    async def main(url, capacity, token):
        fleet = open_fleet(url, "http://127.0.0.1:1", token)
        slots = fleet.slots(capacity)
        for _ in range(capacity):
            await slots.acquire()
        print("holding", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.stdin.readline().strip()))
    """
)


async def test_a_process_killed_holding_slots_gives_them_back(redis_url):
    capacity = 4
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        redis_url,
        str(capacity),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    holder.stdin.write(TOKEN.encode() + b"\n")
    fleet, slots = member(redis_url, capacity)
    try:
        async with asyncio.timeout(30):
            assert b"holding\n" == await holder.stdout.readline()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await slots.acquire()  # the holder has them all
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        async with asyncio.timeout(10):  # the lease lasts 3 s
            for _ in range(capacity):
                await slots.acquire()
        assert capacity == slots.in_use
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await fleet.aclose()


async def test_a_closed_member_gives_its_slots_back_at_once(redis_url):
    first, first_slots = member(redis_url, 3)
    for _ in range(3):
        await first_slots.acquire()
    await first.aclose()
    with redis.Redis.from_url(redis_url) as r:
        held = [k for k in r.scan_iter() if k.endswith(b":slots:held")]
        assert [] == held or {} == r.hgetall(held[0])


# --------------------------------------------------------------------------- one adaptive limit

REFUSED_QUERY = "page=1&per_page=2"  # what the server below refuses; anything else it answers
TOO_MANY = json_response(429, {"success": False, "message": "too many requests"})


async def refuses_one_query(request: RawRequest) -> bytes:
    if request.target.endswith(REFUSED_QUERY):
        return TOO_MANY
    await asyncio.sleep(0.01)
    return PAGE


@pytest.fixture
async def refusing_api() -> AsyncIterator[RawServer]:
    async with RawServer(refuses_one_query) as server:
        yield server


async def auto_calls(client: SegmentsClient, until: Any, *, at_once: int = 4) -> int:
    """``"auto"`` list calls the server answers, ``at_once`` at a time, until ``until()``;
    how many."""
    done = 0

    async def worker() -> None:
        nonlocal done
        while not until():
            await client.segments._list("page=1&per_page=1", adaptive=True)
            done += 1

    await asyncio.gather(*(worker() for _ in range(at_once)))
    return done


def refused_then(*lines: str) -> str:
    """A worker script: a client of the fleet whose first ``"auto"`` call is refused, then
    ``lines`` (inside its ``async with``)."""
    tail = "".join(f"        {line}\n" for line in lines)
    return (
        textwrap.dedent(
            f"""
        import asyncio, sys
        from segments_async import RateLimitError, SegmentsClient

        async def main(url, fleet):
            async with SegmentsClient(url, sys.stdin.readline().strip(), fleet=fleet) as client:
                try:
                    await client.segments._list({REFUSED_QUERY!r}, adaptive=True)
                except RateLimitError:
                    pass
        """
        )
        + tail
        + "\nasyncio.run(main(sys.argv[1], sys.argv[2]))\n"
    )


REFUSED_WORKER = refused_then(
    "await asyncio.sleep(1.0)  # closing at once might cut the news short",
    "print(client._shared.flow.adaptive.epoch)",
)


async def test_a_refusal_seen_by_one_process_lowers_the_others_limit(refusing_api, redis_url):
    async with asyncio.timeout(60), make_client(refusing_api.url, fleet=redis_url) as client:
        adaptive = client._shared.flow.adaptive
        stop = False
        calls = asyncio.create_task(auto_calls(client, lambda: stop or adaptive.epoch > 0))
        await asyncio.sleep(0.3)  # busy, and its limit climbing on clean answers
        refused = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            REFUSED_WORKER,
            refusing_api.url,
            redis_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await refused.communicate(TOKEN.encode() + b"\n")
        assert 0 == refused.returncode
        assert int(output) >= 1  # its own limit was lowered
        # The other process lived a second after its refusal: this client heard of it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(calls), 10)
        stop = True
        await calls
        # Lowered once (the server refused only the other process's requests).
        assert 1 == adaptive.epoch
        assert adaptive.ceiling is not None
        assert adaptive.limit < adaptive.ceiling


async def test_an_exchange_that_fails_with_a_bug_says_so_once_and_starts_again(
    api, redis_url, monkeypatch, caplog
):
    """Should the refusals exchange raise (a bug: Redis's own errors are handled within),
    it does not stop unseen for the rest of the run: one ERROR with the traceback, and it
    starts again a lease's renewal later."""
    monkeypatch.setattr("segments_async._fleet.RENEW_EVERY", 0.05)
    synced = 0
    original = FleetLimit._sync

    async def sync_failing_twice(self: FleetLimit, now: float) -> None:
        nonlocal synced
        synced += 1
        if synced <= 2:
            raise RuntimeError("a bug in the exchange")
        await original(self, now)

    monkeypatch.setattr(FleetLimit, "_sync", sync_failing_twice)
    server, _ = api
    caplog.set_level(logging.ERROR, logger="segments_async")
    async with asyncio.timeout(30), make_client(server.url, fleet=redis_url) as client:
        started = time.monotonic()
        await auto_calls(client, lambda: synced >= 4 or time.monotonic() - started > 10)

    assert synced >= 4  # it went on after failing
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert 1 == len(errors)  # once, however often it fails
    assert "refusals exchange" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert "a bug in the exchange" in caplog.text


async def test_the_share_of_a_member_that_leaves_goes_to_those_that_stay(refusing_api, redis_url):
    async with asyncio.timeout(60), make_client(refusing_api.url, fleet=redis_url) as stays:
        adaptive = stays._shared.flow.adaptive
        stop = False
        calls = asyncio.create_task(auto_calls(stays, lambda: stop))
        async with make_client(refusing_api.url, fleet=redis_url) as leaves:
            await auto_calls(leaves, lambda: leaves._shared.flow.adaptive.limit > 4)
            with pytest.raises(RateLimitError):
                await leaves.segments._list(REFUSED_QUERY, adaptive=True)
            for _ in range(100):  # heard within a twentieth of a second
                if adaptive.ceiling is not None:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # the news of its last retry heard too
            ceiling = adaptive.ceiling
            assert ceiling is not None
        # Closed, it left at once: of two members, the one that stays has the fleet's share.
        for _ in range(100):
            if adaptive.ceiling != ceiling:
                break
            await asyncio.sleep(0.1)
        stop = True
        await calls
        assert 2 * ceiling == adaptive.ceiling


async def test_a_member_that_leaves_takes_only_itself_out(redis_url):
    """Of three members, one leaves: each of the two that stay takes over half its share
    (its leaving must not drop the others from the members, or the first to be heard
    again would take the whole fleet's share)."""
    fleet = open_fleet(redis_url, "https://api.example", TOKEN)
    assert fleet is not None
    flows = [Flow(rate=None, max_connections=100) for _ in range(3)]
    members = [fleet.limit(flow) for flow in flows]
    loop = asyncio.get_running_loop()
    try:
        for member in members * 2:  # each hears of all three
            await member._sync(loop.time())
        leaves = members.pop()
        await leaves._leave()
        for member in members:
            await member._sync(loop.time())
    finally:
        await fleet.aclose()
    assert [6, 6] == [flow.adaptive.limit for flow in flows[:2]]  # 4 each, times 3 / 2


async def members_of(redis_url: str, count: int) -> tuple[Fleet, list[Flow], list[FleetLimit]]:
    """``count`` clients' flows, each a member of one fleet's limit (nothing heard yet)."""
    fleet = open_fleet(redis_url, "https://api.example", TOKEN)
    assert fleet is not None
    flows = [Flow(rate=None, max_connections=100) for _ in range(count)]
    return fleet, flows, [fleet.limit(flow) for flow in flows]


async def test_the_members_keep_a_fair_share_of_their_limits_in_flight(redis_url):
    """Two members learnt 4 and 2 in flight: once their limits settled (no refusal in two
    exchanges), each keeps 3 (a member refused at a low level keeps below it for seconds:
    learnt apart, limits end up unequal, and so would the members' progress)."""
    fleet, flows, members = await members_of(redis_url, 2)
    adaptive = flows[1].adaptive
    adaptive.record(adaptive.ticket(4), rtt=None, refused=True, now=1.0)
    assert 2 == adaptive.limit
    loop = asyncio.get_running_loop()
    try:
        for member in members * 3:
            await member._sync(loop.time())
    finally:
        await fleet.aclose()
    assert [3, 3] == [flow.spare() for flow in flows]


async def test_a_refusal_in_a_fleet_counts_at_the_members_even_share(redis_url):
    """Two members whose limits (4 each) each heard at its last exchange: one refused with
    a single request in flight (the other sent the overload) takes its ceiling at its even
    share of their sum, 4, not at 1 (a ceiling there would hold it, and the fleet's share
    with it, at 1 for seconds)."""
    fleet, flows, members = await members_of(redis_url, 2)
    loop = asyncio.get_running_loop()
    try:
        for member in members * 2:
            await member._sync(loop.time())
    finally:
        await fleet.aclose()
    adaptive = flows[0].adaptive
    adaptive.record(adaptive.ticket(1), rtt=None, refused=True, now=1.0)

    assert (4, 2) == (adaptive.ceiling, adaptive.limit)


def pace_from(adaptive: Any, refused: float) -> None:
    """Paced from a handful of answers: at 70 % of ``refused``, the rate the server
    answered at (``AdaptiveLimit._pace``)."""
    adaptive._rate, adaptive._rate_refused = 0.7 * refused, refused


async def test_the_fleets_pace_is_one_estimate_shared_evenly_and_moved_by_each(redis_url):
    """A member paced from the server answering at 60/s: the fleet's pace is 60. Another,
    paced from a trickle at 2/s, joins: 60 stands (estimates of the whole are not summed),
    30 each. One refused settles 10 lower: 50 for the fleet, 25 each. It leaves: 50 for
    the one that stays."""
    fleet, flows, members = await members_of(redis_url, 2)
    first, second = (flow.adaptive for flow in flows)
    loop = asyncio.get_running_loop()

    async def exchanges(*which: FleetLimit) -> None:
        for member in which:
            await member._sync(loop.time())

    try:
        pace_from(first, 60.0)
        await exchanges(*members)
        assert (60.0, None) == (first.rate, second.rate)
        pace_from(second, 2.0)
        await exchanges(*members, *members)
        assert (30.0, 30.0) == (first.rate, second.rate)
        first._rate -= 10.0  # as a refusal settles it: the fleet hears of the change
        await exchanges(*members, *members)
        assert (25.0, 25.0) == (pytest.approx(first.rate), pytest.approx(second.rate))
        await members[1]._leave()
        await exchanges(members[0])
        assert 50.0 == pytest.approx(first.rate)
    finally:
        await fleet.aclose()


async def test_members_that_learnt_different_paces_share_the_fleets_pace_evenly(redis_url):
    """Two members paced at 90/s and 10/s, each with one request at a time to start: on
    the fleet's shared pace (one GCRA in Redis at the fleet's pace, 100/s) each starts
    about half of them (each on its own pace, nine in ten would be the first's), and
    together they start no faster than the fleet's pace."""
    fleet, flows, members = await members_of(redis_url, 2)
    loop = asyncio.get_running_loop()
    for flow, member in zip(flows, members, strict=True):
        flow.share(member)
    try:
        for member in members * 2:  # each hears of the other
            await member._sync(loop.time())
        for flow, member, pace in zip(flows, members, (90.0, 10.0), strict=True):
            adaptive = flow.adaptive
            for level in (4, 2, 1, 1):  # refused even one at a time: paced
                adaptive.record(adaptive.ticket(level), rtt=None, refused=True, now=-10.0)
            adaptive._rate = adaptive._rate_refused = pace
            # As heard: the fleet's pace 100, of two members; each took its own pace as
            # its share (no exchange meanwhile to even them out).
            member._fleet_pace, member._paced, member._shared = 100.0, 2, pace
        started: list[int] = []
        total = 60

        async def member_starts(index: int) -> None:
            flow = flows[index]
            while len(started) < total:
                ticket = await flow.admit(until=None)
                assert ticket is not None
                started.append(index)
                flow.done(ticket, Outcome(failure=Failure.CLOSED))  # says nothing of load

        began = loop.time()
        async with asyncio.timeout(30):
            await asyncio.gather(member_starts(0), member_starts(1))
        elapsed = loop.time() - began
        assert (90.0, 10.0) == tuple(flow.adaptive.rate for flow in flows)
    finally:
        await fleet.aclose()
    first = started[:total].count(0)
    assert 0.4 * total <= first <= 0.6 * total
    assert elapsed >= (total - rate_burst(100.0) - 2) / 100.0


BUSY_WORKER = refused_then(
    'print("REFUSED", flush=True)',
    "while True:",
    '    await client.segments._list("page=1&per_page=1", adaptive=True)',
)


async def test_the_share_of_a_killed_member_comes_back_within_seconds(refusing_api, redis_url):
    async with asyncio.timeout(60), make_client(refusing_api.url, fleet=redis_url) as stays:
        adaptive = stays._shared.flow.adaptive
        stop = False
        calls = asyncio.create_task(auto_calls(stays, lambda: stop))
        killed = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            BUSY_WORKER,
            refusing_api.url,
            redis_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert killed.stdin is not None
            assert killed.stdout is not None
            killed.stdin.write(TOKEN.encode() + b"\n")
            assert b"REFUSED\n" == await killed.stdout.readline()
            for _ in range(100):  # heard within a twentieth of a second
                if adaptive.ceiling is not None:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # the news of its last retry heard too
            ceiling = adaptive.ceiling
            assert ceiling is not None
            killed.send_signal(signal.SIGKILL)
            await killed.wait()
            for _ in range(100):  # a bound against a hang, not a speed
                if adaptive.ceiling != ceiling:
                    break
                await asyncio.sleep(0.1)
        finally:
            if killed.returncode is None:
                killed.kill()
                await killed.wait()
        stop = True
        await calls
    # Silent for two seconds, it no longer counts: its share is the one that stays'.
    assert 2 * ceiling == adaptive.ceiling


async def test_redis_lost_mid_run_each_limit_goes_on_alone(refusing_api, own_redis, caplog):
    caplog.set_level(logging.WARNING, "segments_async")
    refused = make_client(refusing_api.url, fleet=own_redis.url)
    other = make_client(refusing_api.url, fleet=own_redis.url)
    async with asyncio.timeout(60), refused, other:
        stop = False
        calls = asyncio.create_task(auto_calls(other, lambda: stop))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(own_redis.stop)
        with pytest.raises(RateLimitError):
            await refused.segments._list(REFUSED_QUERY, adaptive=True)
        await asyncio.sleep(0.5)  # ten exchanges, had Redis been there
        stop = True
        answered = await calls  # no call failed
    assert answered > 0
    assert refused._shared.flow.adaptive.epoch >= 1  # its own limit goes on
    assert 0 == other._shared.flow.adaptive.epoch  # and the other's, on its own
    assert all("unavailable" in m for m in fleet_warnings(caplog))


# --------------------------------------------------------------------------- one retry budget


async def fail_for_a_while(url: str, fleet: str | None, clients: int = 2) -> None:
    """Two workers per client, each making 20 calls that fail with 503 after retries."""
    policy = RetryPolicy(max_retries=50, backoff_initial=0.0005, backoff_max=0.001)
    made = [make_client(url, retry=policy, fleet=fleet) for _ in range(clients)]

    async def fail_calls(client: SegmentsClient) -> None:
        for _ in range(20):
            with pytest.raises(Exception, match=r"503|try later"):
                await client.segments.list()

    async with asyncio.timeout(60):
        await asyncio.gather(*(fail_calls(c) for c in made for _ in range(2)))
    for c in made:
        await c.aclose()


async def test_an_outage_sees_one_retry_budget_for_the_whole_fleet(redis_url, caplog):
    """A budget of 500 pays for 100 retries: two clients alone make 200, a fleet ~100."""
    sent: dict[str, int] = {}
    for label, fleet in (("alone", None), ("fleet", redis_url)):

        async def unavailable(request: RawRequest) -> bytes:
            return UNAVAILABLE

        async with RawServer(unavailable) as server:
            await fail_for_a_while(server.url, fleet)
            sent[label] = len(server.requests) - 80  # 2 clients x 2 workers x 20 calls
    assert sent["alone"] >= 190, sent
    assert sent["fleet"] <= 130, sent


# --------------------------------------------------------------------------- Redis trouble


def fleet_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "segments_async" and r.getMessage().startswith("fleet:")
    ]


async def test_redis_unreachable_at_start_changes_nothing_but_one_warning(api, caplog):
    server, arrivals = api
    caplog.set_level(logging.WARNING, "segments_async")
    async with closed_port() as gone:
        dead = gone.replace("http://", "redis://")
    async with asyncio.timeout(30):
        async with make_client(server.url, rate_limit=500, fleet=dead) as client:
            await calls(client, 60)
    assert 60 == len(arrivals.times)
    assert 1 == len(fleet_warnings(caplog)), fleet_warnings(caplog)
    assert "unavailable" in fleet_warnings(caplog)[0]


async def black_hole() -> AsyncIterator[str]:
    """A Redis URL whose server accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()
        await server.wait_closed()


async def test_a_redis_that_never_answers_delays_nothing_for_long_and_fails_nothing(caplog):
    caplog.set_level(logging.WARNING, "segments_async")
    answers = iter([UNAVAILABLE] * 3)

    async def flaky(request: RawRequest) -> bytes:
        return next(answers, PAGE)

    hole = black_hole()
    url = await anext(hole)
    try:
        async with RawServer(flaky) as server, asyncio.timeout(30):
            client = make_client(server.url, rate_limit=200, fleet=url)
            await calls(client, 40)  # retries included: the budget goes through the fleet too
            await client.aclose()
            assert 43 == len(server.requests)
    finally:
        await hole.aclose()
    assert 1 == len(fleet_warnings(caplog)), fleet_warnings(caplog)
    assert "TimeoutError" in fleet_warnings(caplog)[0]


async def test_a_stall_of_our_own_process_is_not_a_redis_outage(
    api, redis_url, caplog, monkeypatch
):
    """A stall of this process (a full garbage collection while other workers hold the
    CPU: 100-150 ms at the start of section h's fleet) during the first lease is not
    Redis failing: taken for one, every member would pace alone at the whole quota."""
    import redis.asyncio.connection

    server, arrivals = api
    caplog.set_level(logging.WARNING, "segments_async")
    read_response = redis.asyncio.connection.AbstractConnection.read_response
    stalls: list[float] = []

    async def stalled(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not stalls:
            # The first command is sent; the loop stands still, then turns (a timer, so
            # that a timeout due meanwhile is seen here, where nothing swallows it).
            stalls.append(0.2)
            time.sleep(0.2)  # noqa: ASYNC251 - the stall is the point
            await asyncio.sleep(0.001)
        return await read_response(self, *args, **kwargs)

    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "read_response", stalled)
    async with (
        asyncio.timeout(30),
        make_client(server.url, rate_limit=100, fleet=redis_url) as client,
    ):
        await calls(client, 10)
    assert [0.2] == stalls
    assert [] == fleet_warnings(caplog)
    assert 10 == len(arrivals.times)


async def test_redis_lost_mid_run_and_back_warns_once_each_way_and_fails_no_call(
    api, own_redis, caplog
):
    server, _ = api
    caplog.set_level(logging.WARNING, "segments_async")
    async with (
        asyncio.timeout(60),
        make_client(server.url, rate_limit=400, fleet=own_redis.url) as client,
    ):
        await calls(client, 40)
        assert any(k.endswith(":quota") for k in redis_contents(own_redis.url))
        await asyncio.to_thread(own_redis.stop)
        await calls(client, 200)
        await asyncio.to_thread(own_redis.start)
        while len(fleet_warnings(caplog)) < 2:  # the circuit probes every 4 s at most
            await calls(client, 20)
        await calls(client, 40)
        # Shared again: the quota is back in (a fresh, empty) Redis.
        assert any(k.endswith(":quota") for k in redis_contents(own_redis.url))
    messages = fleet_warnings(caplog)
    assert 2 == len(messages), messages
    assert "unavailable" in messages[0]
    assert "is back" in messages[1]


async def test_a_fleet_that_loses_redis_keeps_to_its_quota(api, own_redis):
    """Without Redis, each member paces itself at its share: the quota over the members."""
    server, arrivals = api
    rate = 100.0
    clients = [make_client(server.url, rate_limit=rate, fleet=own_redis.url) for _ in range(2)]
    async with asyncio.timeout(60):
        await asyncio.gather(*(calls(c, 20) for c in clients))
        await asyncio.to_thread(own_redis.stop)
        arrivals.times.clear()
        await asyncio.gather(*(calls(c, 100) for c in clients))
    for c in clients:
        await c.aclose()
    # Each member's share is 50/s, with its own burst of 5 on top.
    assert arrivals.most_in_a_second() <= rate + 2 * rate_burst(rate / 2) + 2


async def test_closing_leaves_no_task_connection_or_warning(api, redis_url):
    server, _ = api
    with unclosed_warnings() as found:
        client = make_client(server.url, rate_limit=300, fleet=redis_url)
        await calls(client, 30)
        fleet = client._shared.fleet
        assert fleet is not None
        slots = fleet.slots(4)
        await slots.acquire()
        await client.aclose()
        await settle()
        assert set() == client_tasks()
    assert [] == found


# --------------------------------------------------------------------------- secrets


async def test_the_token_never_reaches_redis(redis_url):
    answers = iter([UNAVAILABLE] * 2)

    async def flaky(request: RawRequest) -> bytes:
        return next(answers, PAGE)

    async with RawServer(flaky) as server:
        client = make_client(server.url, rate_limit=100, fleet=redis_url)
        await calls(client, 10)
        fleet = client._shared.fleet
        assert fleet is not None
        slots = fleet.slots(2)
        await slots.acquire()
        await asyncio.sleep(0.3)  # the budget's sync
        contents = redis_contents(redis_url)
        await client.aclose()
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert any(c.endswith(":quota") for c in contents)
    assert any(c.endswith(":retry_budget") for c in contents)
    assert any(c.endswith(":slots:held") for c in contents)
    assert [] == [c for c in contents if TOKEN in c or digest[:16] in c]


PASSWORD = "pw-9c2e4f71d0"


@pytest.fixture
def guarded_redis() -> Any:
    server = RedisServer(redis_binary_or_skip(), password=PASSWORD).start()
    yield server
    server.stop()


def with_password(url: str, password: str) -> str:
    return url.replace("redis://", f"redis://:{password}@")


async def test_the_redis_password_is_nowhere_but_in_the_connection(api, guarded_redis, caplog):
    server, _ = api
    caplog.set_level(logging.DEBUG, "segments_async")
    url = with_password(guarded_redis.url, PASSWORD)
    client = make_client(server.url, rate_limit=100, fleet=url)
    shown = [repr(client), str(client.fleet), repr(client._shared), repr(client._shared.fleet)]
    await calls(client, 20)
    await client.aclose()
    wrong = make_client(
        server.url, rate_limit=100, fleet=with_password(guarded_redis.url, "x" + PASSWORD)
    )
    await calls(wrong, 5)  # Redis refuses the password: one WARNING, no failure
    await wrong.aclose()
    assert guarded_redis.url == client.fleet
    assert [] == [text for text in shown if PASSWORD in text]
    assert len(fleet_warnings(caplog)) == 1
    assert [] == [r.getMessage() for r in caplog.records if PASSWORD in r.getMessage()]
    assert any(k.endswith(":quota") for k in redis_contents(url))


def frames_holding(root: BaseException, secret: str) -> list[str]:
    found = []
    for error in exceptions_reachable(root):
        found += [f"{type(error).__name__}: {t[:100]}" for t in captured(error) if secret in t]
        tb = error.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if "tests" not in code.co_filename:  # this test's own frame holds it, of course
                for name, local in tb.tb_frame.f_locals.items():
                    if any(secret in text for text in captured(local)):
                        found.append(f"{code.co_filename}:{code.co_name} {name}")
            tb = tb.tb_next
    return found


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"base_url": "ftp://x"}, ValueError),
        ({"rate_limit": "fast"}, TypeError),
        ({"fleet": f"redis://:{PASSWORD}@host:port/0"}, ValueError),
        ({"fleet": f"http://:{PASSWORD}@host/0"}, ValueError),
        ({"fleet": f"redis://:{PASSWORD}@host/0".encode()}, TypeError),
        ({"token": ""}, ValueError),
    ],
)
def test_configuration_errors_hold_the_password_in_no_frame(arguments, error):
    options: dict[str, Any] = {
        "base_url": "https://api.example.com",
        "token": TOKEN,
        "fleet": f"redis://:{PASSWORD}@127.0.0.1:6379/0",
    }
    options |= arguments
    with pytest.raises(error) as raised:
        SegmentsClient(options.pop("base_url"), options.pop("token"), **options)
    assert PASSWORD not in str(raised.value)
    assert [] == frames_holding(raised.value, PASSWORD)


# --------------------------------------------------------------------------- configuration


def test_the_fleet_comes_from_the_environment_unless_given(monkeypatch):
    monkeypatch.setenv("SEGMENTS_FLEET_URL", f"redis://:{PASSWORD}@10.0.0.7:6379/2")
    assert "redis://10.0.0.7:6379/2" == SegmentsClient("https://a.example", TOKEN).fleet
    assert (
        "redis://b:1/0" == SegmentsClient("https://a.example", TOKEN, fleet="redis://b:1/0").fleet
    )
    assert SegmentsClient("https://a.example", TOKEN, fleet="").fleet is None
    monkeypatch.delenv("SEGMENTS_FLEET_URL")
    assert SegmentsClient("https://a.example", TOKEN).fleet is None


def test_without_redis_py_a_fleet_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'segments-async\[fleet\]'"):
        SegmentsClient("https://a.example", TOKEN, fleet="redis://localhost/0")
    assert SegmentsClient("https://a.example", TOKEN).fleet is None


def test_clients_of_other_apis_or_tokens_share_nothing():
    def key(base_url: str, token: str) -> str:
        fleet = open_fleet("redis://localhost/0", base_url, token)
        assert fleet is not None
        return fleet.key

    same = key("https://api.example.com/v2", TOKEN)
    assert same == key("https://api.example.com", TOKEN)  # the origin, not the path
    assert same != key("https://api.example.com:8443", TOKEN)
    assert same != key("https://api.example.com", TOKEN + "x")
    assert TOKEN not in same


# --------------------------------------------------------------------------- the README


async def test_the_readmes_gunicorn_app_joins_the_fleet(redis_url, monkeypatch):
    """The README's app, run as printed (one worker of the four), shares Redis's quota."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Many processes, one quota", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    async with FakeSegmentsServer() as api:
        api.add_segments(3)
        monkeypatch.setenv("SEGMENTS_BASE_URL", api.base_url)
        monkeypatch.setenv("SEGMENTS_API_TOKEN", api.token)
        monkeypatch.setenv("SEGMENTS_FLEET_URL", redis_url)
        namespace: dict[str, Any] = {"__name__": "app"}  # web.AppKey reads its module's name
        exec(compile(code, "README-gunicorn", "exec"), namespace)  # noqa: S102 - our README
        async with TestClient(TestServer(namespace["app"])) as http:
            answer = await http.get("/names")
            assert 200 == answer.status
            assert 3 == len(await answer.json())
    assert any(k.endswith(":quota") for k in redis_contents(redis_url))
