"""The call's ``deadline`` over real sockets: attempts, backoffs and the pool wait within it.

The fake server's faults make these deterministic: a latency far longer than the deadline,
a ``Retry-After`` far beyond it, a held connection. Assertions are on counts and messages;
the few bounds on time leave a margin of several times what the call should take.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

import segments_async._retry
from segments_async import (
    APIConnectionError,
    APITimeoutError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
    SegmentsClient,
)
from segments_async.testing import FakeSegmentsServer, Fault

from ..leaks import acquired_connections, client_tasks, settle
from .support import client_for


@pytest.fixture
async def server():
    async with FakeSegmentsServer(seed=11) as server:
        server.add_segments(50)
        yield server


async def arrived(server: FakeSegmentsServer, count: int) -> None:
    """Wait (a bounded while) until the server has received ``count`` requests."""
    async with asyncio.timeout(5):
        while len(server.requests) < count:  # noqa: ASYNC110 (the server has no arrival event)
            await asyncio.sleep(0.005)


def attempts_in(message: str) -> int:
    found = re.search(r"ran out after (\d+) attempts?", message)
    assert found is not None, message
    return int(found.group(1))


def cut_total(error: BaseException) -> float:
    """The attempt timeout (seconds) that the chained attempt error reports."""
    found = re.search(r"request timed out after ([0-9.e-]+)s", str(error.__cause__))
    assert found is not None, repr(error.__cause__)
    return float(found.group(1))


async def test_latency_longer_than_the_deadline_ends_the_call_at_the_deadline(server):
    """An answer slower than the deadline: one attempt, cut, then the deadline's error."""
    server.inject(Fault.latency(10), method="GET")
    async with client_for(server, deadline=0.3) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(APITimeoutError) as caught:
            await client.segments.list()
        took = asyncio.get_running_loop().time() - started

    message = str(caught.value)
    assert "the call's deadline of 0.3s ran out after 1 attempt (" in message
    assert isinstance(caught.value, APIConnectionError)
    assert isinstance(caught.value.__cause__, APITimeoutError)
    assert 0.3 >= cut_total(caught.value)
    assert 1 == len(server.requests)
    assert took < 5  # the 10 s answer was not waited for


async def test_attempts_time_out_and_retry_within_the_deadline(server):
    """A per-attempt timeout shorter than the deadline still retries, and succeeds."""
    server.inject(Fault.latency(10), method="GET", times=2)
    async with client_for(server, timeout=0.2, deadline=30) as client:
        page = await client.segments.list()

    assert 50 == page.total
    assert 3 == len(server.requests)


async def test_the_deadline_ends_a_series_of_retries(server):
    """Timeouts retried until the deadline: the error counts the attempts that were sent."""
    server.inject(Fault.latency(10), method="GET", probability=1.0)
    retry = RetryPolicy(max_retries=10, backoff_initial=0.001, backoff_max=0.002)
    async with client_for(server, timeout=0.2, deadline=0.7, retry=retry) as client:
        with pytest.raises(APITimeoutError) as caught:
            await client.segments.list()

    attempts = attempts_in(str(caught.value))
    # Three 0.2 s attempts fit in 0.7 s and a fourth has at most 0.1 s left, cut to it;
    # timers never fire early, so there cannot be more (and a slow machine makes fewer).
    assert 2 <= attempts <= 4
    assert attempts == len(server.requests)


@pytest.mark.parametrize(
    ("status", "error"), [(503, InternalServerError), (429, RateLimitError)], ids=str
)
async def test_retry_after_beyond_the_deadline_gives_up_at_once(server, caplog, status, error):
    """Retry-After: 5 with a 2 s deadline: one request, the answer's error at once."""
    caplog.set_level(logging.WARNING, logger="segments_async")
    server.inject(Fault.status(status, retry_after=5), method="GET")
    async with client_for(server, deadline=2) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(error) as caught:
            await client.segments.list()
        took = asyncio.get_running_loop().time() - started

    assert status == caught.value.status_code
    assert 1 == len(server.requests)
    assert any("would outlast the deadline" in r.getMessage() for r in caplog.records)
    assert took < 1.5  # neither the 5 s nor the 2 s was waited out


async def test_retry_after_within_the_deadline_is_waited(server):
    """A Retry-After shorter than the time left is obeyed and the retry made."""
    server.inject(Fault.status(503, retry_after=0.05), method="GET")
    async with client_for(server, deadline=5) as client:
        page = await client.segments.list()

    assert 50 == page.total
    assert 2 == len(server.requests)


async def test_a_backoff_longer_than_the_time_left_is_not_waited(server, monkeypatch, caplog):
    """A 9 s backoff with a 2 s deadline: the error at once, one request, no sleep."""
    caplog.set_level(logging.WARNING, logger="segments_async")
    monkeypatch.setattr(segments_async._retry, "default_draw", lambda: 0.9)
    server.inject(Fault.status(503), method="GET")
    retry = RetryPolicy(backoff_initial=10, backoff_max=10)
    async with client_for(server, deadline=2, retry=retry) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(InternalServerError):
            await client.segments.list()
        took = asyncio.get_running_loop().time() - started

    assert 1 == len(server.requests)
    warnings = [r.getMessage() for r in caplog.records]
    assert any("the wait of 9.000s would outlast the deadline" in m for m in warnings)
    assert took < 1.5


async def test_the_wait_for_a_pooled_connection_counts(server):
    """max_connections=1 held by a slow call: another call's deadline runs out queued."""
    server.inject(Fault.latency(10), method="GET")
    async with client_for(server, max_connections=1) as client:
        before = client_tasks()
        holder = asyncio.create_task(client.segments.list())
        await arrived(server, 1)
        hurried = client.with_options(deadline=0.3)
        with pytest.raises(APITimeoutError) as caught:
            await hurried.segments.list()
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder
        await settle()
        assert 0 == acquired_connections(client)
        assert set() == client_tasks() - before

    message = caught.value.message
    assert message.startswith("no connection free within")
    assert message.endswith("(the call's deadline); the pool of 1 is busy")
    assert caught.value.outcome_unknown is False
    assert 1 == len(server.requests)  # the queued call never sent anything


async def test_the_attempt_after_a_pool_wait_gets_only_what_remains(server):
    """Time spent waiting for a connection is taken from the attempt's timeout."""
    server.inject(Fault.latency(0.3), method="GET")  # the holder's request
    server.inject(Fault.latency(10), method="GET")  # the hurried call's request
    async with client_for(server, max_connections=1) as client:
        holder = asyncio.create_task(client.segments.list())
        await arrived(server, 1)
        with pytest.raises(APITimeoutError) as caught:
            await client.with_options(deadline=1.0).segments.list()
        assert 50 == (await holder).total

    assert 1 == attempts_in(str(caught.value))
    # It waited >= 0.3 s of its 1 s for the connection: at most 0.7 s were left to send.
    assert cut_total(caught.value) < 0.85
    assert 2 == len(server.requests)


async def test_cancelling_a_call_with_a_deadline(server):
    """Cancellation works as without a deadline: nothing held, nothing left running."""
    server.inject(Fault.latency(10), method="GET")
    async with client_for(server, deadline=5) as client:
        before = client_tasks()
        call = asyncio.create_task(client.segments.list())
        await arrived(server, 1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await settle()
        assert 0 == acquired_connections(client)
        assert set() == client_tasks() - before
        assert 50 == (await client.segments.list()).total


async def test_with_options_sets_and_removes_the_deadline(server):
    """A view's deadline applies to the view only; deadline=None removes it."""
    async with client_for(server) as client:
        hurried = client.with_options(deadline=0.2)
        relaxed = hurried.with_options(deadline=None)
        assert (None, 0.2, None) == (client.deadline, hurried.deadline, relaxed.deadline)

        server.inject(Fault.latency(0.4), method="GET", times=2)
        with pytest.raises(APITimeoutError, match=r"deadline of 0\.2s ran out"):
            await hurried.segments.list()
        assert 50 == (await client.segments.list()).total
        assert 50 == (await relaxed.segments.list()).total


async def test_each_page_of_an_iteration_is_one_call(server):
    """Ten 0.06 s pages under a 0.45 s deadline: each page fits, so the iteration does."""
    server.inject(Fault.latency(0.06), method="GET", probability=1.0)
    async with client_for(server, deadline=0.45) as client:
        started = asyncio.get_running_loop().time()
        segments = [s async for s in client.segments.iterate(per_page=5, concurrency=1)]
        took = asyncio.get_running_loop().time() - started

    assert 50 == len(segments)
    assert 10 == len(server.requests)
    assert took >= 0.45  # longer than the deadline in all, yet no call ran out


async def test_asyncio_timeout_bounds_a_whole_iteration(server):
    """asyncio.timeout() around an iteration still works with a deadline per page."""
    server.inject(Fault.latency(0.01), method="GET", probability=1.0)
    async with client_for(server, deadline=5) as client:
        before = client_tasks()
        seen = 0
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as whole:
                async for _ in client.segments.iterate(per_page=5, concurrency=2):
                    seen += 1
                    if seen == 12:  # expire while a page is in flight
                        whole.reschedule(asyncio.get_running_loop().time() + 0.001)
        await settle()
        assert 12 <= seen < 50
        assert 0 == acquired_connections(client)
        assert set() == client_tasks() - before


async def test_bad_deadlines_send_nothing(server):
    """A bad deadline on the client or a view is refused before anything is sent."""
    async with client_for(server) as client:
        for bad in (0, -1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="deadline"):
                client.with_options(deadline=bad)
            with pytest.raises(ValueError, match="deadline"):
                SegmentsClient(server.base_url, server.token, deadline=bad)
        for wrong in ("1", True, [1]):
            with pytest.raises(TypeError, match="deadline"):
                client.with_options(deadline=wrong)  # type: ignore[arg-type]
    assert [] == server.requests
