"""Waiting for a pooled connection is not an attempt.

A call that is still waiting for a connection has sent nothing: its attempt's timeout has
not started, its outcome is not "unknown", and it spends nothing from the retry budget.
Bursts far larger than the pool queue, first come first served, and succeed against a
healthy server; only a call's ``deadline`` bounds the wait, with an error that says so.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from segments_async import APITimeoutError, NotFoundError, Segment

from ..rawserver import RawRequest, RawServer, json_response
from .support import SEGMENT, SEGMENT_ID, Held, envelope, make_client, not_found


def page(number: int) -> dict[str, object]:
    return envelope(
        {
            "currentPage": number,
            "perPage": 20,
            "lastPage": 10_000,
            "total": 200_000,
            "items": [],
            "filters": [],
        }
    )


class WarningSeen(logging.Handler):
    """Sets ``seen`` on the library's first WARNING (a retry, or a spent budget)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = asyncio.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.seen.set()


@pytest.fixture
def warnings_seen():
    handler = WarningSeen()
    logger = logging.getLogger("segments_async")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def test_delete_behind_a_busy_pool_of_one_is_not_found(warnings_seen):
    """A DELETE that only waited for the connection, then got 404, raises NotFoundError.

    Had its wait counted as a timed-out attempt, its retry's 404 would read as "deleted".
    The slow GET is let go as soon as a retry is logged (there must be none), or soon.
    """

    async def answer(request: RawRequest) -> bytes:
        return not_found() if request.method == "DELETE" else json_response(200, page(1))

    held = Held(answer)
    async with RawServer(held) as server, make_client(server.url, max_connections=1) as client:
        slow = asyncio.ensure_future(client.with_options(timeout=10).segments.list())
        await held.arrivals(1)
        held.release.clear()
        hurried = client.with_options(timeout=0.05)
        delete = asyncio.ensure_future(hurried.segments.delete(SEGMENT_ID))
        try:
            async with asyncio.timeout(0.3):  # six timeouts of the DELETE
                await warnings_seen.seen.wait()
        except TimeoutError:
            pass
        held.release.set()
        await slow
        with pytest.raises(NotFoundError):
            await delete

    assert ["GET", "DELETE"] == [r.method for r in server.requests]
    assert [] == warnings_seen.messages


async def test_a_burst_of_creates_on_a_pool_of_two_all_succeed(warnings_seen):
    """120 creates, 2 at a time, each 10 ms: the last waits ~0.6 s, more than its timeout."""
    in_flight = 0
    most = 0

    async def handler(request: RawRequest) -> bytes:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return json_response(200, envelope(SEGMENT))

    server = RawServer(handler)
    async with server, make_client(server.url, max_connections=2, timeout=0.25) as client:
        created = await asyncio.gather(*(client.segments.create(f"s{i}") for i in range(120)))

    assert [Segment(**SEGMENT)] * 120 == created
    assert 120 == len(server.requests)
    assert 2 == most
    assert [] == warnings_seen.messages


async def test_a_thousand_gets_on_a_pool_of_one_queue_in_order(warnings_seen):
    """1,000 calls at once on one connection: served in call order, none timed out or retried,
    and the retry budget untouched."""

    async def handler(request: RawRequest) -> bytes:
        # A millisecond each: the last call waits over a second in the pool, far past the
        # per-attempt timeout, which only a slow attempt (a hiccup of 0.5 s) could reach.
        await asyncio.sleep(0.001)
        number = int(request.target.split("page=")[1].split("&")[0])
        return json_response(200, page(number))

    server = RawServer(handler)
    async with server, make_client(server.url, max_connections=1, timeout=0.5) as client:
        budget = client._shared.budget
        pages = await asyncio.gather(*(client.segments.list(page=n) for n in range(1, 1001)))
        left = budget.tokens

    assert list(range(1, 1001)) == [p.current_page for p in pages]
    assert [f"page={n}&" for n in range(1, 1001)] == [
        r.target.split("?")[1].split("per_page")[0] for r in server.requests
    ]
    assert budget.capacity == left
    assert 1 == server.connections
    assert [] == warnings_seen.messages


async def test_the_deadline_bounds_the_wait_and_says_nothing_was_sent():
    """With the only connection held, a call with a deadline fails saying why; unsent."""
    held = Held(lambda request: asyncio.sleep(0, json_response(200, page(1))))
    async with RawServer(held) as server, make_client(server.url, max_connections=1) as client:
        slow = asyncio.ensure_future(client.segments.list())
        await held.arrivals(1)
        hurried = client.with_options(deadline=0.05)
        calls = [
            lambda: hurried.segments.create("EMEA"),
            lambda: hurried.segments.delete(SEGMENT_ID),
        ]
        for call in calls:
            with pytest.raises(APITimeoutError) as info:
                await call()
            assert info.value.message.startswith("no connection free within")
            assert info.value.message.endswith("the pool of 1 is busy")
            assert info.value.outcome_unknown is False
        held.release.set()
        await slow
        await client.segments.list()  # the pool is whole again

    assert ["GET", "GET"] == [r.method for r in server.requests]


async def test_callers_cancelled_while_queued_leak_no_connection():
    """Cancel every other queued call: the others succeed and the pool ends up empty."""
    held = Held(lambda request: asyncio.sleep(0, json_response(200, page(1))))
    async with RawServer(held) as server, make_client(server.url, max_connections=2) as client:
        calls = [asyncio.ensure_future(client.segments.list()) for _ in range(200)]
        await held.arrivals(2)
        for call in calls[3::2]:
            call.cancel()
        held.release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        gate = client._shared.transport._gate
        assert (0, 0) == (gate.in_use, gate.waiting)

    cancelled = [r for r in results if isinstance(r, asyncio.CancelledError)]
    assert 99 == len(cancelled)
    assert 101 == len(server.requests)
